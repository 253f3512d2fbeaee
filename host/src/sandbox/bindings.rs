//! Rust bindings generated from `wit/`: the `agent` world every component
//! implements, and the `negotiating-agent` world (only its `negotiator`
//! export is used; the rest is the same). The engine links them; the call
//! state implements their host imports.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "mercato:agent/agent",
    imports: {
        // A consumer that does not read its stream holds the guest here.
        "mercato:agent/host.emit": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

/// Bindings of the `negotiating-agent` world.
pub mod negotiating {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "mercato:agent/negotiating-agent",
        imports: {
            // A consumer that does not read its stream holds the guest here.
            "mercato:agent/host.emit": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });
}
