//! The sandbox's errors: a component refused, or a call that failed.

/// The sandbox's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A component the sandbox will not run, or an internal fault. (Serialised
/// when a compiler child process reports a refusal to its parent.)
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// The bytes are not a WebAssembly component (or do not validate).
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// The component imports interfaces the host does not grant.
    #[error("the component imports what the host does not grant: {}", .0.join(", "))]
    ForbiddenImports(Vec<String>),
    /// The component does not implement the `mercato:agent/agent` world.
    #[error("the component does not implement mercato:agent/agent: {0}")]
    WrongWorld(String),
    /// A cached artifact could not be loaded (corrupt or from another engine).
    #[error("compiled artifact rejected: {0}")]
    Artifact(String),
    /// `describe()` failed while the component was being prepared.
    #[error("describe() failed: {0}")]
    Describe(Failure),
    /// `describe()` answered something unusable.
    #[error("describe() answered an invalid description: {0}")]
    InvalidDescription(String),
    /// Compiling took longer than its budget (the compiler was stopped).
    #[error("compiling the component took longer than its {ms} ms budget")]
    CompileBudget {
        /// The budget.
        ms: u64,
    },
    /// A host-side fault (thread pool gone, engine misconfigured).
    #[error("sandbox fault: {0}")]
    Internal(String),
}

/// Why a guest call did not produce a result. Each is the guest's doing (or
/// the host's load), never a host bug, and each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Failure {
    /// The call used all the fuel it was given.
    #[error("the call used all {fuel} fuel it was given")]
    FuelExhausted {
        /// Fuel the call was given.
        fuel: u64,
    },
    /// The call ran past its wall-clock deadline.
    #[error("the call ran past its {deadline_ms} ms deadline")]
    DeadlineExceeded {
        /// The deadline.
        deadline_ms: u64,
    },
    /// The guest tried to grow its memory past the limit.
    #[error("the guest tried to grow its memory past {memory_bytes_max} bytes")]
    MemoryLimit {
        /// The limit.
        memory_bytes_max: u64,
    },
    /// The guest trapped (panic, stack overflow, out-of-bounds access...).
    #[error("the guest trapped: {trap}")]
    Trapped {
        /// Which trap, as a stable snake_case name.
        trap: String,
    },
    /// The guest's output or streamed chunks passed the byte budget.
    #[error("the guest's output passed the {bytes_max}-byte budget")]
    OutputTooLarge {
        /// The budget.
        bytes_max: u64,
    },
    /// Every call slot stayed busy for the whole queue wait.
    #[error("every call slot is busy")]
    Overloaded,
}

impl Failure {
    /// The stable error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::FuelExhausted { .. } => "fuel_exhausted",
            Failure::DeadlineExceeded { .. } => "deadline_exceeded",
            Failure::MemoryLimit { .. } => "memory_limit",
            Failure::Trapped { .. } => "guest_trapped",
            Failure::OutputTooLarge { .. } => "output_too_large",
            Failure::Overloaded => "overloaded",
        }
    }
}
