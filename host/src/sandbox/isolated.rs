//! Compiling in a child process, so that a compilation can be stopped.
//!
//! Cranelift cannot be interrupted: a component built to compile slowly
//! would keep both cores busy long after its upload gave up, and the
//! compiler's memory would stay with the host. So the host runs
//! `mercato compile-component`, which reads a component on stdin and writes
//! its artifact on stdout (or its refusal as JSON, exit status
//! [`EXIT_REFUSED`]). The child is killed at the time budget or as soon as
//! the upload waiting for it is dropped, and its memory goes with it. The
//! parent loads the artifact (wasmtime checks it came from a compatible
//! engine) and checks the component's world and imports again.

use super::{Error, Result, Sandbox, SandboxLimits};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The child's exit status for a component the compiler refused.
pub const EXIT_REFUSED: i32 = 3;

/// The subcommand the child runs.
pub const SUBCOMMAND: &str = "compile-component";

impl Sandbox {
    /// Compiles `wasm` in a child process running `exe`, killed after
    /// `budget` or when this future is dropped. Returns the artifact for
    /// [`Sandbox::load`].
    pub async fn compile_isolated(
        &self,
        exe: &Path,
        wasm: &[u8],
        budget: Duration,
    ) -> Result<Vec<u8>> {
        let internal = |e: std::io::Error| Error::Internal(format!("compiler process: {e}"));
        let mut child = tokio::process::Command::new(exe)
            .arg(SUBCOMMAND)
            .arg("--memory-bytes-max")
            .arg(self.limits.memory_bytes_max.to_string())
            .arg("--concurrent-calls-max")
            .arg(self.limits.concurrent_calls_max.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(internal)?;
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::Internal("compiler process without pipes".into()));
        };
        let run = async {
            // The child reads everything before it writes anything.
            stdin.write_all(wasm).await?;
            drop(stdin);
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>((child.wait().await?, out))
        };
        let (status, out) = match tokio::time::timeout(budget, run).await {
            Ok(ran) => ran.map_err(internal)?,
            Err(_) => {
                // `kill_on_drop` would too; say it here, where it happens.
                let _ = child.start_kill();
                return Err(Error::CompileBudget {
                    ms: budget.as_millis() as u64,
                });
            }
        };
        match status.code() {
            Some(0) => Ok(out),
            Some(EXIT_REFUSED) => Err(serde_json::from_slice(&out).unwrap_or_else(|e| {
                Error::Internal(format!("compiler process answered no refusal: {e}"))
            })),
            _ => Err(Error::Internal(format!("compiler process ended: {status}"))),
        }
    }
}

/// The child's side: reads a component on stdin, compiles it with an engine
/// configured as the parent's, writes the artifact (exit 0) or the refusal
/// as JSON (exit [`EXIT_REFUSED`]) on stdout. Returns the exit status.
pub fn compile_child(memory_bytes_max: u64, concurrent_calls_max: u32) -> i32 {
    let mut wasm = Vec::new();
    if std::io::stdin().read_to_end(&mut wasm).is_err() {
        return 1;
    }
    let limits = SandboxLimits {
        memory_bytes_max,
        concurrent_calls_max,
        ..SandboxLimits::default()
    };
    let compiled = Sandbox::new(limits).and_then(|sandbox| sandbox.compile(&wasm));
    let mut stdout = std::io::stdout().lock();
    match compiled {
        Ok((_, artifact)) => match stdout.write_all(&artifact).and_then(|()| stdout.flush()) {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Err(refusal) => {
            let written = serde_json::to_writer(&mut stdout, &refusal)
                .map_err(std::io::Error::from)
                .and_then(|()| stdout.flush());
            if written.is_ok() { EXIT_REFUSED } else { 1 }
        }
    }
}
