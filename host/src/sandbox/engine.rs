//! The engine, the linker, compiling and loading components, and `describe()`.

use super::bindings::negotiating::NegotiatingAgentPre;
use super::bindings::{self, AgentPre};
use super::state::{CallState, TABLE_ELEMENTS_MAX};
use super::{Error, Result, SandboxLimits, imports};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OperatorCost, OptLevel,
    PoolingAllocationConfig,
};

/// How often the epoch advances; the deadline's resolution.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of a returned slot's memory, tables and stack reset in place rather
/// than handed back to the kernel.
const RESIDENT_BYTES: usize = 1 << 20;
/// Slots decommitted together.
const DECOMMIT_BATCH: usize = 8;

/// A compiled component, ready to instantiate (cheap to clone).
#[derive(Clone)]
pub struct Compiled {
    pub(super) pre: AgentPre<CallState>,
    /// Present when the component also exports `negotiator`.
    pub(super) negotiator: Option<NegotiatingAgentPre<CallState>>,
}

impl Compiled {
    /// Whether the component implements the `negotiating-agent` world.
    pub fn negotiates(&self) -> bool {
        self.negotiator.is_some()
    }
}

/// What `describe()` said, in plain Rust types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDescription {
    /// Agent name.
    pub name: String,
    /// Semantic version, as the guest wrote it.
    pub version: String,
    /// Its capabilities.
    pub capabilities: Vec<CapabilityDescription>,
}

/// One capability as `describe()` said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityDescription {
    /// Name, unique within the agent.
    pub name: String,
    /// Plain-language description.
    pub description: String,
    /// Category.
    pub category: String,
    /// Keywords.
    pub tags: Vec<String>,
    /// Input JSON Schema, as JSON text.
    pub input_schema: String,
    /// Output JSON Schema, as JSON text.
    pub output_schema: String,
    /// Worked examples.
    pub examples: Vec<ExampleDescription>,
    /// Whether the same input always gives the same output.
    pub deterministic: bool,
}

/// One worked example, as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleDescription {
    /// Input JSON.
    pub input: String,
    /// Expected output JSON.
    pub output: String,
}

/// The process's one sandbox: engine, linker, call slots and epoch ticker.
pub struct Sandbox {
    pub(super) engine: Engine,
    pub(super) linker: Linker<CallState>,
    pub(super) limits: SandboxLimits,
    pub(super) slots: Arc<Semaphore>,
    fingerprint: String,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn engine_config(limits: &SandboxLimits) -> Config {
    let slots = limits.concurrent_calls_max.max(1);
    let mut pool = PoolingAllocationConfig::default();
    // A Rust component is a handful of core instances (the program plus
    // adapter shims) with one or two memories and tables.
    pool.total_component_instances(slots)
        .total_core_instances(slots * 8)
        .total_memories(slots * 4)
        .total_tables(slots * 4)
        .total_stacks(slots)
        // Tables reserve `table_elements` pointers each (address space,
        // touched only as they grow): the pool's cap is the limiter's cap.
        .table_elements(TABLE_ELEMENTS_MAX)
        .max_memory_size(usize::try_from(limits.memory_bytes_max).unwrap_or(usize::MAX))
        // Returning a slot with `madvise` costs a TLB shootdown on every core
        // (measured: a third of all CPU time under load). Reset the pages a
        // call dirtied with memset instead (found with PAGEMAP_SCAN where the
        // kernel has it), and batch the decommits that remain.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(RESIDENT_BYTES)
        .table_keep_resident(RESIDENT_BYTES)
        .async_stack_keep_resident(RESIDENT_BYTES)
        .decommit_batch_size(DECOMMIT_BATCH);
    // wasmtime bills `table.grow` per element *requested*, before the limiter
    // decides: a refused request for 2^31 elements cost 2^31 fuel. The limiter
    // bills the elements it grants instead (`Limiter::table_growing`).
    let mut cost = OperatorCost::new();
    cost.variable.table_grow_per_element = 0;
    let mut config = Config::new();
    config
        .operator_cost(cost)
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

impl Sandbox {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(limits: SandboxLimits) -> Result<Self> {
        let engine =
            Engine::new(&engine_config(&limits)).map_err(|e| Error::Internal(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        // Every WASI interface is linked, but `imports::forbidden` refuses any
        // component that imports more than the granted few, and the context
        // has nothing behind what remains (see `CallState::new`).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::Internal(format!("{e:#}")))?;
        bindings::mercato::agent::host::add_to_linker::<_, wasmtime::component::HasSelf<CallState>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| Error::Internal(format!("{e:#}")))?;

        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let fingerprint = format!("{:016x}", hasher.finish());

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let stop = ticker_stop.clone();
        std::thread::Builder::new()
            .name("mercato-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| Error::Internal(format!("epoch ticker: {e}")))?;

        let slots = Arc::new(Semaphore::new(limits.concurrent_calls_max.max(1) as usize));
        Ok(Sandbox {
            engine,
            linker,
            limits,
            slots,
            fingerprint,
            ticker_stop,
        })
    }

    /// Identifies this engine's compiler and settings; an artifact compiled by
    /// an engine with another fingerprint must not be loaded.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The per-call limits.
    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// Checks and compiles a component. Returns it with its serialised
    /// artifact for the cache. CPU-heavy: call from a blocking thread.
    pub fn compile(&self, wasm: &[u8]) -> Result<(Compiled, Vec<u8>)> {
        if !wasm.starts_with(b"\0asm") {
            return Err(Error::InvalidComponent(
                "not a WebAssembly file: it does not begin with the `\\0asm` magic bytes \
                 (a component is the .wasm that `cargo build --target wasm32-wasip2` writes)"
                    .into(),
            ));
        }
        if wasm.get(4..8) == Some(&[1, 0, 0, 0]) {
            return Err(Error::InvalidComponent(
                "a core WebAssembly module, not a component: build for wasm32-wasip2 \
                 (or wrap the module with `wasm-tools component new`)"
                    .into(),
            ));
        }
        let component = Component::new(&self.engine, wasm)
            .map_err(|e| Error::InvalidComponent(one_line(&e)))?;
        let compiled = self.prepare(&component)?;
        let artifact = component
            .serialize()
            .map_err(|e| Error::Internal(format!("{e:#}")))?;
        Ok((compiled, artifact))
    }

    /// Loads an artifact produced by [`Sandbox::compile`] in a process with
    /// the same fingerprint.
    pub fn load(&self, artifact: &[u8]) -> Result<Compiled> {
        let component = deserialize(&self.engine, artifact)?;
        self.prepare(&component)
    }

    fn prepare(&self, component: &Component) -> Result<Compiled> {
        let ty = component.component_type();
        let names: Vec<String> = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let refused = imports::forbidden(names.iter().map(String::as_str));
        if !refused.is_empty() {
            return Err(Error::ForbiddenImports(refused));
        }
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| Error::WrongWorld(one_line(&e)))?;
        // The richer world first: a component exporting `negotiator` as well.
        let negotiator = NegotiatingAgentPre::new(pre.clone()).ok();
        let pre = AgentPre::new(pre).map_err(|e| Error::WrongWorld(one_line(&e)))?;
        Ok(Compiled { pre, negotiator })
    }

    /// Runs `describe()` under the sandbox's limits.
    pub async fn describe(&self, compiled: &Compiled) -> Result<AgentDescription> {
        let fuel = self.limits.fuel_per_call_max;
        let _slot = self.slot().await.map_err(Error::Describe)?;
        let mut store = self.store("describe", fuel, None);
        let call = async {
            let agent = compiled.pre.instantiate_async(&mut store).await?;
            agent
                .mercato_agent_capabilities()
                .call_describe(&mut store)
                .await
        };
        let ran = tokio::time::timeout(self.deadline_with_grace(), call).await;
        let info = self.settle(ran, &store, fuel).map_err(Error::Describe)?;
        Ok(AgentDescription {
            name: info.name,
            version: info.version,
            capabilities: info
                .capabilities
                .into_iter()
                .map(|c| CapabilityDescription {
                    name: c.name,
                    description: c.description,
                    category: c.category,
                    tags: c.tags,
                    input_schema: c.input_schema,
                    output_schema: c.output_schema,
                    examples: c
                        .examples
                        .into_iter()
                        .map(|e| ExampleDescription {
                            input: e.input,
                            output: e.output,
                        })
                        .collect(),
                    deterministic: c.deterministic,
                })
                .collect(),
        })
    }
}

#[expect(
    unsafe_code,
    reason = "wasmtime trusts deserialised artifacts to be its own output. Mercato only \
              passes bytes it serialised itself, read back from its store under a key of the \
              component's SHA-256 and this engine's fingerprint, and verified against the \
              artifact's own SHA-256 recorded at write time; wasmtime re-checks the engine \
              compatibility header itself."
)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> Result<Component> {
    // SAFETY: see the `expect` reason above: the bytes are Component::serialize
    // output from an engine with the same fingerprint, verified by hash.
    unsafe { Component::deserialize(engine, artifact) }.map_err(|e| Error::Artifact(one_line(&e)))
}

/// An error on one line (its lines joined), at most 500 characters.
fn one_line(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(500)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Instance, Module, Store};

    /// A core module whose `grow` adds elements to its table.
    const GROWER: &str = r#"(module
        (table $t 1 funcref)
        (func (export "grow") (param i32) (result i32)
            (table.grow $t (ref.null func) (local.get 0))))"#;

    #[test]
    fn a_table_grows_to_the_hosts_cap_and_a_refused_growth_costs_no_fuel() {
        let engine = Engine::new(&engine_config(&SandboxLimits::default())).expect("engine");
        let wasm = wat::parse_str(GROWER).expect("wat");
        let module = Module::new(&engine, wasm).expect("module");
        let state = CallState::new("grower".into(), 64 << 20, 1 << 20, 1 << 10, None);
        let mut store = Store::new(&engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(1_000_000).expect("fuel");
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = Instance::new(&mut store, &module, &[]).expect("instance");
        store.data().meter.take();
        let grow = instance
            .get_typed_func::<i32, i32>(&mut store, "grow")
            .expect("grow");
        // Past the pooling allocator's default of 20,000, up to the cap.
        let cap = i32::try_from(TABLE_ELEMENTS_MAX).expect("fits");
        assert_eq!(grow.call(&mut store, cap - 2).expect("grown"), 1);
        // Granted growth is billed per element, through the meter.
        assert_eq!(
            store.data().meter.take(),
            u64::try_from(cap - 2).expect("fits")
        );
        let before = store.get_fuel().expect("fuel");
        assert_eq!(grow.call(&mut store, 1).expect("to the cap"), cap - 1);
        // Refused growth (one past the cap, and 2^31 - 1) answers -1 and
        // costs what the call costs, not the elements that were not added.
        assert_eq!(grow.call(&mut store, 1).expect("refused"), -1);
        assert_eq!(grow.call(&mut store, i32::MAX).expect("refused"), -1);
        store.data().meter.take();
        let spent = before - store.get_fuel().expect("fuel");
        assert!(spent < 100, "three grow calls cost {spent} fuel");
        // The table is still usable at its cap.
        assert_eq!(grow.call(&mut store, 0).expect("size"), cap);
    }
}
