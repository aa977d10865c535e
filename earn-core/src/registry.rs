//! Hooks registered at link time with `inventory`, sorted once per model.

use std::any::{Any, TypeId};
use std::cmp::Reverse;
use std::fmt;

use crate::handler::{HandlerRegistration, handler_registrations};
use crate::phase::HookPhase;

/// One hook, as submitted by `#[hooks]` at link time.
///
/// Users never build this by hand; [`registry`] lists them for debugging.
pub struct HookRegistration {
    /// The model's `TypeId`, as a function because `TypeId::of` is not const.
    pub model: fn() -> TypeId,
    /// The model's type name.
    pub model_name: &'static str,
    /// The phase the hook runs in.
    pub phase: HookPhase,
    /// Higher runs first.
    pub priority: i32,
    /// The hook's function name.
    pub function: &'static str,
    /// `module_path!()` of the `#[hooks]` block.
    pub module: &'static str,
    /// `file!()` of the hook.
    pub file: &'static str,
    /// `line!()` of the hook.
    pub line: u32,
    /// Position of the hook within its `#[hooks]` block.
    pub index: u32,
    /// The typed hook (the SQL backend's `Hook<Model>`), downcast when the model's
    /// table is built.
    pub hook: &'static (dyn Any + Send + Sync),
}

inventory::collect!(HookRegistration);

impl HookRegistration {
    /// The order hooks of one phase run in: priority (higher first), then
    /// declaration order (module, line, position). Never link order.
    fn sort_key(&self) -> (Reverse<i32>, &'static str, &'static str, u32, u32) {
        (
            Reverse(self.priority),
            self.module,
            self.file,
            self.line,
            self.index,
        )
    }
}

impl fmt::Debug for HookRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookRegistration")
            .field("model", &self.model_name)
            .field("phase", &self.phase)
            .field("priority", &self.priority)
            .field("function", &self.function)
            .field("module", &self.module)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish()
    }
}

impl fmt::Display for HookRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}::{} ({}, priority {}) at {}:{}",
            self.model_name, self.function, self.phase, self.priority, self.file, self.line
        )
    }
}

/// The hooks of a behaviour (`#[behaviour] trait Audited`) for one model,
/// built by the behaviour's macro; the model's table merges them with the
/// model's own.
#[doc(hidden)]
#[derive(Debug)]
pub struct BehaviourHooks<H> {
    /// The behaviour's name.
    pub name: &'static str,
    /// Its hooks, in declaration order.
    pub hooks: Vec<BehaviourHook<H>>,
}

/// One hook of a behaviour.
#[doc(hidden)]
#[derive(Debug)]
pub struct BehaviourHook<H> {
    /// The phase it runs in.
    pub phase: HookPhase,
    /// Higher runs first.
    pub priority: i32,
    /// `Behaviour::function`.
    pub function: &'static str,
    /// `file!()` of the hook.
    pub file: &'static str,
    /// `line!()` of the hook.
    pub line: u32,
    /// The typed hook.
    pub hook: H,
}

impl<H> BehaviourHooks<H> {
    /// What the registry lists of these hooks, applied to `model`.
    pub fn describe(&self, model: &'static str) -> Vec<AppliedHook> {
        self.hooks
            .iter()
            .map(|hook| AppliedHook {
                model,
                behaviour: self.name,
                phase: hook.phase,
                priority: hook.priority,
                function: hook.function,
                file: hook.file,
                line: hook.line,
            })
            .collect()
    }
}

/// A model's use of a behaviour, submitted by `#[derive(Model)]` for
/// `#[model(behaviours(…))]`, so that [`registry`] lists its hooks.
#[doc(hidden)]
pub struct BehaviourRegistration {
    /// The behaviour's hooks as applied to the model.
    pub hooks: fn() -> Vec<AppliedHook>,
}

inventory::collect!(BehaviourRegistration);

impl fmt::Debug for BehaviourRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries((self.hooks)()).finish()
    }
}

/// A hook a model runs because of a behaviour it applies
/// (`#[model(behaviours(Audited))]`), as [`registry`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedHook {
    /// The model's type name.
    pub model: &'static str,
    /// The behaviour's name.
    pub behaviour: &'static str,
    /// The phase the hook runs in.
    pub phase: HookPhase,
    /// Higher runs first.
    pub priority: i32,
    /// `Behaviour::function`.
    pub function: &'static str,
    /// `file!()` of the hook, in the behaviour.
    pub file: &'static str,
    /// `line!()` of the hook.
    pub line: u32,
}

impl fmt::Display for AppliedHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} uses {} ({}, priority {}) at {}:{}",
            self.model, self.function, self.phase, self.priority, self.file, self.line
        )
    }
}

/// What was registered at link time: every hook of every model, the hooks
/// models run through behaviours, and every `#[event_handler]` function.
/// Its `Display` lists them, one per line.
#[derive(Debug)]
#[non_exhaustive]
pub struct Registry {
    /// The hooks, sorted by model, phase and run order.
    pub hooks: Vec<&'static HookRegistration>,
    /// The hooks of behaviours, per model that applies them, sorted by
    /// model, phase and priority (higher first).
    pub behaviour_hooks: Vec<AppliedHook>,
    /// The event handler functions, sorted by pattern, then run order
    /// (priority, higher first, then source location). Handlers of a
    /// `#[service]` are attached at run time and are not listed.
    pub handlers: Vec<&'static HandlerRegistration>,
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "hooks ({}):", self.hooks.len())?;
        for hook in &self.hooks {
            writeln!(f, "  {hook}")?;
        }
        writeln!(f, "behaviour hooks ({}):", self.behaviour_hooks.len())?;
        for hook in &self.behaviour_hooks {
            writeln!(f, "  {hook}")?;
        }
        writeln!(f, "event handlers ({}):", self.handlers.len())?;
        for handler in &self.handlers {
            writeln!(f, "  {handler}")?;
        }
        Ok(())
    }
}

/// Every registered hook and event handler, for debugging a hook or a
/// handler that never runs: if it is not listed, it was not linked (see
/// the crate docs on hooks and handlers in another crate).
///
/// ```
/// let registry = earn::registry();
/// for hook in &registry.hooks {
///     println!("{hook}"); // User::normalize (before_save, priority 0) at src/user.rs:12
/// }
/// for handler in &registry.handlers {
///     println!("{handler}"); // app::send_welcome on `user.created` (priority 10) at src/mail.rs:8
/// }
/// print!("{registry}"); // both, with headings
/// ```
pub fn registry() -> Registry {
    let mut hooks: Vec<_> = inventory::iter::<HookRegistration>.into_iter().collect();
    hooks.sort_by_key(|r| (r.model_name, r.phase, r.sort_key()));
    let mut handlers: Vec<_> = handler_registrations().collect();
    handlers.sort_by_key(|r| {
        (
            r.options.pattern,
            Reverse(r.options.priority),
            r.file,
            r.line,
            r.name,
        )
    });
    let mut behaviour_hooks: Vec<AppliedHook> = inventory::iter::<BehaviourRegistration>
        .into_iter()
        .flat_map(|r| (r.hooks)())
        .collect();
    behaviour_hooks.sort_by_key(|h| (h.model, h.phase, Reverse(h.priority), h.function));
    Registry {
        hooks,
        behaviour_hooks,
        handlers,
    }
}

/// The hooks of one model, by phase, in run order. Built once per model.
pub struct HookTable<H: 'static> {
    phases: [Vec<&'static H>; HookPhase::ALL.len()],
    names: [Vec<&'static str>; HookPhase::ALL.len()],
}

impl<H> fmt::Debug for HookTable<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for phase in HookPhase::ALL {
            let names = &self.names[phase.index()];
            if !names.is_empty() {
                map.entry(&phase.as_str(), names);
            }
        }
        map.finish()
    }
}

impl<H: Any> HookTable<H> {
    /// Collects the hooks registered for the model `model` whose typed hook
    /// is an `H`.
    pub fn collect(model: TypeId) -> Self {
        HookTable::collect_with(model, Vec::new())
    }

    /// Collects the hooks registered for the model `model`, with those of
    /// the behaviours it applies. One phase runs by priority (higher
    /// first); at equal priority, the behaviours' hooks in the order the
    /// behaviours are listed (each in declaration order), then the model's
    /// own in declaration order. Never link order.
    pub fn collect_with(model: TypeId, behaviours: Vec<BehaviourHooks<H>>) -> Self {
        // (priority, group, source position) → (phase, name, hook)
        type Key = (Reverse<i32>, usize, &'static str, &'static str, u32, u32);
        let own = behaviours.len();
        let mut found: Vec<(Key, HookPhase, &'static str, &'static H)> =
            inventory::iter::<HookRegistration>
                .into_iter()
                .filter(|r| (r.model)() == model)
                .filter_map(|r| {
                    let hook = (r.hook as &dyn Any).downcast_ref::<H>()?;
                    let (priority, module, file, line, index) = r.sort_key();
                    Some((
                        (priority, own, module, file, line, index),
                        r.phase,
                        r.function,
                        hook,
                    ))
                })
                .collect();
        for (group, behaviour) in behaviours.into_iter().enumerate() {
            for (index, applied) in behaviour.hooks.into_iter().enumerate() {
                let key = (
                    Reverse(applied.priority),
                    group,
                    "",
                    applied.file,
                    applied.line,
                    u32::try_from(index).unwrap_or(u32::MAX),
                );
                // Built once per model, for the life of the program, like
                // the `static` hooks of `#[hooks]`.
                let hook: &'static H = Box::leak(Box::new(applied.hook));
                found.push((key, applied.phase, applied.function, hook));
            }
        }
        found.sort_by_key(|(key, ..)| *key);
        let mut table = HookTable {
            phases: Default::default(),
            names: Default::default(),
        };
        for (_, phase, name, hook) in found {
            table.phases[phase.index()].push(hook);
            table.names[phase.index()].push(name);
        }
        table
    }

    /// The hooks of `phase`, in run order, with their function names.
    #[inline]
    pub fn phase(
        &self,
        phase: HookPhase,
    ) -> impl ExactSizeIterator<Item = (&'static H, &'static str)> + '_ {
        let i = phase.index();
        self.phases[i]
            .iter()
            .copied()
            .zip(self.names[i].iter().copied())
    }

    /// Whether `phase` has any hook.
    #[inline]
    pub fn has(&self, phase: HookPhase) -> bool {
        !self.phases[phase.index()].is_empty()
    }

    /// Whether the model has any hook at all.
    pub fn is_empty(&self) -> bool {
        self.phases.iter().all(Vec::is_empty)
    }
}
