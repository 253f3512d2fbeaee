//! In-process sandbox benchmarks, each next to its peer in the same run.
//!
//! Run: `cargo bench -p mercato-tests --bench sandbox`
//!
//! 1. Instantiate + invoke a trivial capability (`unit-converter.convert`)
//!    through Mercato's sandbox, through the whole market path (schemas,
//!    metering, record), and through a bare wasmtime `InstancePre` with the
//!    same pooling allocator (the peer).
//! 2. Fuel metering overhead: a CPU-heavy call (`summarizer.summarize` on a
//!    long text) on bare engines with fuel on and off.

use mercato_host::config::Config;
use mercato_host::identity::Org;
use mercato_host::market::{InvokeRequest, Market};
use mercato_host::sandbox::{Sandbox, SandboxLimits};
use mercato_tests::{component, manifest};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config as WasmConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod peer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "mercato:agent/agent",
        imports: { default: trappable },
        exports: { default: async },
    });
}

struct PeerState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for PeerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl peer::mercato::agent::host::Host for PeerState {
    fn log(&mut self, _: peer::mercato::agent::host::LogLevel, _: String) -> wasmtime::Result<()> {
        Ok(())
    }
    fn emit(&mut self, _: String) -> wasmtime::Result<()> {
        Ok(())
    }
}

fn peer_engine(fuel: bool, tuned: bool) -> Engine {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(64)
        .total_core_instances(512)
        .total_memories(256)
        .total_tables(256)
        .total_stacks(64);
    if tuned {
        // The same slot-reset tuning Mercato's sandbox uses.
        pool.pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(1 << 20)
            .async_stack_keep_resident(1 << 20)
            .decommit_batch_size(8);
    }
    let mut config = WasmConfig::new();
    config
        .consume_fuel(fuel)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).expect("engine")
}

fn peer_pre(engine: &Engine, wasm: &[u8]) -> peer::AgentPre<PeerState> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    peer::mercato::agent::host::add_to_linker::<_, HasSelf<PeerState>>(&mut linker, |s| s)
        .expect("host");
    let component = Component::new(engine, wasm).expect("compile");
    peer::AgentPre::new(linker.instantiate_pre(&component).expect("pre")).expect("agent pre")
}

async fn peer_call(
    engine: &Engine,
    pre: &peer::AgentPre<PeerState>,
    fuel: bool,
    cap: &str,
    input: &str,
) {
    let mut store = Store::new(
        engine,
        PeerState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    if fuel {
        store.set_fuel(u64::MAX / 2).expect("fuel");
    }
    let agent = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    let out = agent
        .mercato_agent_capabilities()
        .call_invoke(&mut store, cap, input)
        .await
        .expect("call");
    assert!(out.is_ok());
}

struct Summary {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

async fn measure<F, Fut>(iterations: usize, mut f: F) -> Summary
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..iterations / 10 {
        f().await;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        f().await;
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    Summary {
        p50: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        mean: total / samples.len() as u32,
    }
}

fn row(name: &str, s: &Summary) {
    println!(
        "| {name:<58} | {:>9.1} | {:>9.1} | {:>9.1} |",
        us(s.p50),
        us(s.p99),
        us(s.mean)
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let converter = component("unit-converter");
    let input = r#"{"value": 26.2, "from": "mi", "to": "km"}"#;

    println!(
        "| path (unit-converter.convert, {iterations} calls, one thread) | p50 µs | p99 µs | mean µs |"
    );
    println!("|---|---:|---:|---:|");

    let engine = peer_engine(true, false);
    let pre = peer_pre(&engine, &converter);
    let bare = measure(iterations, || {
        peer_call(&engine, &pre, true, "convert", input)
    })
    .await;
    row("bare wasmtime InstancePre + pooling + fuel (peer)", &bare);
    let engine = peer_engine(true, true);
    let pre = peer_pre(&engine, &converter);
    let tuned = measure(iterations, || {
        peer_call(&engine, &pre, true, "convert", input)
    })
    .await;
    row("bare, with Mercato's slot-reset tuning (peer)", &tuned);

    let sandbox = Sandbox::new(SandboxLimits::default()).expect("sandbox");
    let (compiled, _) = sandbox.compile(&converter).expect("compile");
    let ours = measure(iterations, || async {
        let call = sandbox
            .invoke(&compiled, "bench", "convert", input, 10_000_000, None)
            .await;
        assert!(call.result.is_ok());
    })
    .await;
    row(
        "Mercato sandbox (limits, epoch deadline, slot, emit budget)",
        &ours,
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().into(),
        ..Config::default()
    };
    let (market, _) = Market::open(config).await.expect("market");
    let org: Org = market.create_org("bench").await.expect("org").org;
    let org = market.verify_org(&org.org_id).await.expect("verify");
    let key = mercato_tests::new_signing_key();
    market
        .add_key(&org, &mercato_tests::public_key(&key))
        .await
        .expect("key");
    let upload = mercato_tests::signed_upload(&key, converter.clone(), manifest("unit-converter"));
    market.publish(&org, upload).await.expect("publish");
    let value: serde_json::Value = serde_json::from_str(input).expect("json");
    let full = measure(iterations, || async {
        let request = InvokeRequest {
            capability_id: "unit-converter.convert".into(),
            input: value.clone(),
            max_price_micros: None,
            contract_id: None,
            approval_id: None,
            cancel: None,
        };
        market.invoke(&org, request, None).await.expect("invoke");
    })
    .await;
    row(
        "Mercato market path (+ schemas, pricing, stats, record)",
        &full,
    );
    market.close().await.expect("close");
    println!();
    println!(
        "sandbox / bare = {:.2}x, market / bare = {:.2}x, sandbox / tuned bare = {:.2}x (p50)",
        us(ours.p50) / us(bare.p50),
        us(full.p50) / us(bare.p50),
        us(ours.p50) / us(tuned.p50)
    );

    println!();
    let summarizer = component("summarizer");
    let paragraph = "Mercato lists capabilities from many providers. Each call runs in a sandbox with fuel. \
        Providers set prices per call and per million fuel. Consumers cap what they pay. ";
    let text = paragraph.repeat(200);
    let heavy = serde_json::json!({ "text": text, "sentences": 5 }).to_string();
    let heavy_iterations = (iterations / 100).max(20);
    println!(
        "| CPU-heavy call (summarizer.summarize, {} KiB, {heavy_iterations} calls) | p50 µs | p99 µs | mean µs |",
        heavy.len() / 1024
    );
    println!("|---|---:|---:|---:|");
    let mut p50s = Vec::new();
    for fuel in [false, true] {
        let engine = peer_engine(fuel, true);
        let pre = peer_pre(&engine, &summarizer);
        let s = measure(heavy_iterations, || {
            peer_call(&engine, &pre, fuel, "summarize", &heavy)
        })
        .await;
        row(
            if fuel {
                "fuel metering on"
            } else {
                "fuel metering off"
            },
            &s,
        );
        p50s.push(us(s.p50));
    }
    println!();
    println!(
        "fuel overhead = {:+.1}% (p50)",
        (p50s[1] / p50s[0] - 1.0) * 100.0
    );
}
