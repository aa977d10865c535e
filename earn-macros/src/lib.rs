//! Procedural macros of [earn](https://docs.rs/earn). Use them through the
//! facade (`use earn::prelude::*`); the generated code names only `::earn`.

mod attr;
mod case;
mod ctxt;
mod field;
mod handler;
mod hooks;
mod model;
mod service;

use proc_macro::TokenStream;

/// `#[derive(Model)]` of [earn](https://docs.rs/earn), implemented in `earn-macros`:
/// import it from `earn` (`use earn::prelude::*;`).
#[proc_macro_derive(Model, attributes(model))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    model::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// `#[derive(Field)]` of [earn](https://docs.rs/earn), implemented in `earn-macros`:
/// import it from `earn` (`use earn::prelude::*;`).
#[proc_macro_derive(Field, attributes(field))]
pub fn derive_field(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    field::expand(&input).into()
}

/// `#[hooks]` of [earn](https://docs.rs/earn), implemented in `earn-macros`:
/// import it from `earn` (`use earn::prelude::*;`).
#[proc_macro_attribute]
pub fn hooks(args: TokenStream, item: TokenStream) -> TokenStream {
    hooks::expand(args.into(), item.into()).into()
}

/// `#[behaviour]` of [earn](https://docs.rs/earn), implemented in `earn-macros`:
/// import it from `earn` (`use earn::prelude::*;`).
#[proc_macro_attribute]
pub fn behaviour(args: TokenStream, item: TokenStream) -> TokenStream {
    hooks::behaviour::expand(args.into(), item.into()).into()
}

/// `#[event_handler]` of [earn](https://docs.rs/earn), implemented in `earn-macros`:
/// import it from `earn` (`use earn::prelude::*;`).
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(args.into(), item.into()).into()
}

/// `#[service]` of [earn](https://docs.rs/earn), implemented in `earn-macros`:
/// import it from `earn` (`use earn::prelude::*;`).
#[proc_macro_attribute]
pub fn service(args: TokenStream, item: TokenStream) -> TokenStream {
    service::expand(args.into(), item.into()).into()
}

macro_rules! phase_attributes {
    ($($name:ident $variant:ident $doc:literal,)*) => {$(
        #[doc = concat!(
            "`#[", stringify!($name), "]` of [earn](https://docs.rs/earn), implemented in `earn-macros`: ",
            "import it from `earn` (`use earn::prelude::*;`)."
        )]
        #[proc_macro_attribute]
        pub fn $name(_args: TokenStream, item: TokenStream) -> TokenStream {
            hooks::outside_hooks_block(stringify!($name), item.into()).into()
        }
    )*};
}

// One attribute per phase, from the list the runtime's `HookPhase` is made of.
earn_vocab::for_each_phase!(phase_attributes);
