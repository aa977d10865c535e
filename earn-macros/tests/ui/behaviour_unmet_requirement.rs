use earn::prelude::*;

trait HasTenant {
    fn tenant_id(&self) -> i64;
}

#[behaviour]
trait TenantScoped: Model + HasTenant {
    #[before_save]
    fn check(&self) {}
}

// `Project` does not implement `HasTenant`: reported on `TenantScoped`.
#[derive(Debug, Clone, Model)]
#[model(table = "projects", behaviours(TenantScoped))]
pub struct Project {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
}

fn main() {}
