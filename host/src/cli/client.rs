//! Client commands over the REST API.

use super::error::{advise, unreachable};
use super::http::{admin_token, answer, key, own_org_id, segment, send};
use super::offline::read_signing_key;
use super::{AdminCommand, Cli, Command, KeysCommand, OrgCommand};
use crate::identity::signing;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use sha2::Digest;
use std::io::Write;
use std::time::Duration;

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Prints money fields of an answer as aligned rows.
fn print_micros(body: &Value, rows: &[(&str, &str)]) {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, field) in rows {
        println!(
            "{label:<width$} {}",
            micros(body[*field].as_u64().unwrap_or(0))
        );
    }
}

fn print_key(k: &Value) {
    println!(
        "{}  {}  {}",
        k["key_id"].as_str().unwrap_or(""),
        k["public_key"].as_str().unwrap_or(""),
        if k["revoked_at_ms"].is_null() {
            "active"
        } else {
            "revoked"
        }
    );
}

/// The multipart `signature` field for an upload.
fn upload_signature(
    key_file: &std::path::Path,
    wasm_sha256: &str,
    manifest: &str,
) -> Result<String> {
    let key = read_signing_key(key_file)?;
    let manifest_sha256 = hex::encode(sha2::Sha256::digest(manifest.as_bytes()));
    let statement = signing::upload_statement(wasm_sha256, &manifest_sha256);
    Ok(serde_json::to_string(&signing::UploadSignature {
        key_id: signing::key_id(&key.verifying_key()),
        signature: signing::sign_bytes(&key, &statement),
    })?)
}

fn micros(m: u64) -> String {
    format!("{m} micros ({}.{:06} units)", m / 1_000_000, m % 1_000_000)
}

/// Runs one client command against `cli.server`.
pub async fn run_client(cli: &Cli) -> Result<()> {
    let http = super::http::client(cli.ca_cert.as_deref())?;
    let base = cli.server.trim_end_matches('/');
    match &cli.command {
        Command::Serve { .. }
        | Command::CompileComponent { .. }
        | Command::McpStdio
        | Command::Attest { .. }
        | Command::Verify { .. }
        | Command::Store { .. }
        | Command::Keys {
            command: KeysCommand::Generate { .. },
        } => bail!("not a client command"),
        Command::Org {
            command: OrgCommand::Verify { org_id },
        } => {
            let response = http
                .post(format!("{base}/v1/orgs/{}/verify", segment(org_id)))
                .bearer_auth(admin_token(cli)?)
                .send();
            let body = answer(response.await.map_err(|e| unreachable(base, &e))?).await?;
            if cli.json {
                println!("{body:#}");
            } else {
                println!("verified {}", body["org_id"].as_str().unwrap_or(""));
            }
        }
        Command::Keys { command } => {
            let org_id = own_org_id(&http, base, cli).await?;
            let url = format!("{base}/v1/orgs/{org_id}/keys");
            let response = match command {
                KeysCommand::Register { key: path } => {
                    let public = read_signing_key(path)?.verifying_key();
                    let body =
                        serde_json::json!({ "public_key": signing::public_key_hex(&public) });
                    http.post(&url).bearer_auth(key(cli)?).json(&body).send()
                }
                KeysCommand::List => http.get(&url).bearer_auth(key(cli)?).send(),
                KeysCommand::Revoke { key_id } => http
                    .delete(format!("{url}/{}", segment(key_id)))
                    .bearer_auth(key(cli)?)
                    .send(),
                KeysCommand::Generate { .. } => bail!("not a client command"),
            };
            let body = answer(response.await.map_err(|e| unreachable(base, &e))?).await?;
            if cli.json {
                println!("{body:#}");
            } else if let Some(keys) = body.as_array() {
                keys.iter().for_each(print_key);
            } else {
                print_key(&body);
            }
        }
        Command::Admin {
            command: AdminCommand::Reattest { category },
        } => {
            let bar = spinner("re-attesting listed versions".into());
            let response = http
                .post(format!("{base}/v1/admin/reattest"))
                .bearer_auth(admin_token(cli)?)
                .json(&serde_json::json!({ "category": category }))
                .send()
                .await;
            bar.finish_and_clear();
            let body = answer(response.map_err(|e| unreachable(base, &e))?).await?;
            if cli.json {
                println!("{body:#}");
            } else {
                let checked = body["checked"].as_array().map(Vec::len).unwrap_or(0);
                println!("re-attested {checked} versions");
                for d in body["delisted"].as_array().into_iter().flatten() {
                    println!("delisted {}", d["version"].as_str().unwrap_or(""));
                    for f in d["failures"].as_array().into_iter().flatten() {
                        println!("  - {}", f.as_str().unwrap_or(""));
                    }
                }
            }
        }
        Command::Org {
            command: OrgCommand::Create { name },
        } => {
            let response = http
                .post(format!("{base}/v1/orgs"))
                .json(&serde_json::json!({ "name": name }))
                .send();
            let body = answer(response.await.map_err(|e| unreachable(base, &e))?).await?;
            if cli.json {
                println!("{body:#}");
            } else {
                println!("org_id:  {}", body["org_id"].as_str().unwrap_or(""));
                println!("api_key: {}", body["api_key"].as_str().unwrap_or(""));
                println!("Keep the API key: it is not shown again.");
            }
        }
        Command::Publish {
            component,
            manifest,
            key: key_file,
        } => {
            let wasm = std::fs::read(component)
                .with_context(|| format!("cannot read {}", component.display()))?;
            let wasm_sha256 = hex::encode(sha2::Sha256::digest(&wasm));
            let terms = std::fs::read_to_string(manifest)
                .with_context(|| format!("cannot read {}", manifest.display()))?;
            let name = component
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let form = reqwest::multipart::Form::new()
                .part(
                    "component",
                    reqwest::multipart::Part::bytes(wasm).file_name(name.clone()),
                )
                .text("manifest", terms.clone())
                .text(
                    "signature",
                    upload_signature(key_file, &wasm_sha256, &terms)?,
                );
            let bar = spinner(format!("uploading, compiling and attesting {name}"));
            let response = http
                .post(format!("{base}/v1/components"))
                .bearer_auth(key(cli)?)
                .multipart(form)
                .send()
                .await;
            bar.finish_and_clear();
            let body = answer(response.map_err(|e| unreachable(base, &e))?).await?;
            if cli.json {
                println!("{body:#}");
            } else {
                let verb = if body["created"].as_bool() == Some(true) {
                    "published"
                } else {
                    "already published"
                };
                println!(
                    "{verb} {} {}",
                    body["agent"].as_str().unwrap_or(""),
                    body["version"].as_str().unwrap_or("")
                );
                for c in body["capabilities"].as_array().into_iter().flatten() {
                    println!("  {}", c["pinned_id"].as_str().unwrap_or(""));
                }
            }
        }
        Command::Capabilities => {
            let body = answer(
                http.get(format!("{base}/v1/capabilities"))
                    .send()
                    .await
                    .map_err(|e| unreachable(base, &e))?,
            )
            .await?;
            if cli.json {
                println!("{body:#}");
            } else {
                for c in body.as_array().into_iter().flatten() {
                    println!(
                        "{:<36} {:>10} µ + {:>5} µ/Mfuel  {}",
                        c["pinned_id"].as_str().unwrap_or(""),
                        c["terms"]["price_micros"],
                        c["terms"]["micros_per_mfuel"],
                        c["description"]
                            .as_str()
                            .unwrap_or("")
                            .chars()
                            .take(60)
                            .collect::<String>()
                    );
                }
            }
        }
        Command::Discover {
            need,
            max_price,
            category,
            latency_max,
            jurisdiction,
            limit,
        } => {
            let mut query = serde_json::json!({ "need": need, "limit": limit });
            if let Some(p) = max_price {
                query["max_price_micros"] = (*p).into();
            }
            if let Some(c) = category {
                query["category"] = c.clone().into();
            }
            if let Some(l) = latency_max {
                query["latency_ms_max"] = (*l).into();
            }
            if let Some(j) = jurisdiction {
                query["data_policy"] = serde_json::json!({ "jurisdiction": j });
            }
            let body = answer(
                http.post(format!("{base}/v1/discover"))
                    .json(&query)
                    .send()
                    .await
                    .map_err(|e| unreachable(base, &e))?,
            )
            .await?;
            if cli.json {
                println!("{body:#}");
            } else {
                for r in body["results"].as_array().into_iter().flatten() {
                    let c = &r["capability"];
                    println!(
                        "{:>6.4}  {:<36} {}",
                        r["score"].as_f64().unwrap_or(0.0),
                        c["pinned_id"].as_str().unwrap_or(""),
                        c["description"]
                            .as_str()
                            .unwrap_or("")
                            .chars()
                            .take(70)
                            .collect::<String>()
                    );
                }
            }
        }
        Command::Quote { id } => {
            let body = answer(
                http.get(format!("{base}/v1/capabilities/{}/quote", segment(id)))
                    .send()
                    .await
                    .map_err(|e| unreachable(base, &e))?,
            )
            .await?;
            println!("{body:#}");
        }
        Command::Invoke {
            id,
            input,
            max_price,
            stream,
            contract,
        } => {
            let input: Value = serde_json::from_str(input).map_err(|e| {
                let text = e.to_string();
                let reason = text.rfind(" at line ").map_or(&text[..], |at| &text[..at]);
                advise(
                    format!("--input is not JSON: {reason} (column {})", e.column()),
                    r#"give the input as one JSON value, e.g. --input '{"text": "hello"}'"#,
                )
            })?;
            let mut request = serde_json::json!({ "input": input });
            if let Some(cap) = max_price {
                request["max_price_micros"] = (*cap).into();
            }
            if let Some(contract) = contract {
                request["contract_id"] = contract.as_str().into();
            }
            let mut call = http
                .post(format!("{base}/v1/capabilities/{}/invoke", segment(id)))
                .bearer_auth(key(cli)?)
                .json(&request);
            if *stream {
                call = call.header(reqwest::header::ACCEPT, "text/event-stream");
                let response = call.send().await.map_err(|e| unreachable(base, &e))?;
                if !response.status().is_success() {
                    answer(response).await?;
                    return Ok(());
                }
                let mut bytes = response.bytes_stream();
                while let Some(chunk) = bytes.next().await {
                    let chunk = chunk
                        .map_err(|e| unreachable(base, &e))
                        .context("the host broke off the stream")?;
                    print!("{}", String::from_utf8_lossy(&chunk));
                }
                return Ok(());
            }
            let body = send(base, call).await?;
            if cli.json {
                println!("{body:#}");
            } else {
                println!("{:#}", body["output"]);
                println!(
                    "charged: {} (cost {} + fee {})  fuel: {}  time: {} ms  transaction: {}",
                    micros(body["charged_micros"].as_u64().unwrap_or(0)),
                    body["cost_micros"],
                    body["fee_micros"],
                    body["fuel_used"],
                    body["duration_ms"],
                    body["transaction_id"].as_str().unwrap_or("")
                );
            }
        }
        Command::Balance => {
            let response = http
                .get(format!("{base}/v1/accounts/me"))
                .bearer_auth(key(cli)?);
            let body = send(base, response).await?;
            if cli.json {
                println!("{body:#}");
            } else {
                print_micros(
                    &body,
                    &[
                        ("available", "available_micros"),
                        ("held for calls", "pending_micros"),
                        ("paid, in escrow", "escrowed_out_micros"),
                        ("owed to you, in escrow", "escrowed_in_micros"),
                        ("spent today", "spent_today_micros"),
                    ],
                );
                if body["budget"]["paused"] == true {
                    println!("paused: calls are paused in the budget");
                } else if body["paused"] == true {
                    println!("paused: the daily budget is exhausted");
                }
            }
        }
        Command::Negotiate {
            id,
            max_price,
            latency_max,
            retention,
            jurisdiction,
            rate_limit,
            hours,
            accept_counter,
        } => {
            let terms = serde_json::json!({
                "max_price_micros": max_price,
                "latency_ms_max": latency_max,
                "retention": retention,
                "jurisdiction": jurisdiction,
                "rate_limit_per_minute": rate_limit,
                "validity_ms": hours.saturating_mul(3_600_000),
            });
            let response = http
                .post(format!("{base}/v1/negotiations"))
                .bearer_auth(key(cli)?)
                .json(&serde_json::json!({ "capability_id": id, "terms": terms }));
            let mut body = send(base, response).await?;
            if body["negotiation"]["status"] == "countered" {
                // With --json, stdout carries only the JSON answer.
                let mut out: Box<dyn Write> = if cli.json {
                    Box::new(std::io::stderr())
                } else {
                    Box::new(std::io::stdout())
                };
                let _ = writeln!(out, "countered:");
                for reason in body["negotiation"]["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let _ = writeln!(out, "  - {}", reason.as_str().unwrap_or(""));
                }
                if *accept_counter {
                    let nid = body["negotiation"]["negotiation_id"].as_str().unwrap_or("");
                    let response = http
                        .post(format!("{base}/v1/negotiations/{nid}/respond"))
                        .bearer_auth(key(cli)?)
                        .json(&serde_json::json!({ "action": "accept" }));
                    body = send(base, response).await?;
                }
            }
            if cli.json {
                println!("{body:#}");
            } else {
                let n = &body["negotiation"];
                println!(
                    "negotiation {}: {}",
                    n["negotiation_id"].as_str().unwrap_or(""),
                    n["status"].as_str().unwrap_or("")
                );
                if let Some(contract) = body["contract"].as_object() {
                    println!(
                        "contract:    {}",
                        contract["contract_id"].as_str().unwrap_or("")
                    );
                    println!("terms:       {}", contract["terms"]);
                } else if n["status"] == "rejected" {
                    for reason in n["reasons"].as_array().into_iter().flatten() {
                        println!("  - {}", reason.as_str().unwrap_or(""));
                    }
                }
            }
        }
        Command::Rate { transaction, score } => {
            let response = http
                .post(format!(
                    "{base}/v1/transactions/{}/rating",
                    segment(transaction)
                ))
                .bearer_auth(key(cli)?)
                .json(&serde_json::json!({ "score": score }));
            let body = send(base, response).await?;
            if cli.json {
                println!("{body:#}");
            } else {
                println!("rated {transaction}: {score}");
            }
        }
        Command::Admin {
            command: AdminCommand::Deposit { org_id, amount },
        } => {
            let response = http
                .post(format!("{base}/v1/accounts/{}/deposits", segment(org_id)))
                .bearer_auth(admin_token(cli)?)
                .json(&serde_json::json!({ "amount_micros": amount }));
            let body = send(base, response).await?;
            if cli.json {
                println!("{body:#}");
            } else {
                println!(
                    "deposited {} to {org_id}; available {}",
                    micros(*amount),
                    micros(body["available_micros"].as_u64().unwrap_or(0))
                );
            }
        }
        Command::Admin {
            command: AdminCommand::Ledger,
        } => {
            let response = http
                .get(format!("{base}/v1/admin/ledger"))
                .bearer_auth(admin_token(cli)?);
            let body = send(base, response).await?;
            if cli.json {
                println!("{body:#}");
            } else {
                print_micros(
                    &body,
                    &[
                        ("deposited", "deposited_micros"),
                        ("with organisations", "organisations_micros"),
                        ("in escrow", "escrow_micros"),
                        ("marketplace fees", "fees_micros"),
                    ],
                );
                println!(
                    "balanced: {}",
                    if body["problem"].is_null() {
                        "yes"
                    } else {
                        "NO"
                    }
                );
            }
        }
    }
    Ok(())
}
