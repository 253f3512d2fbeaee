//! Discovery over real published sample agents, over HTTP.

#[cfg(feature = "model")]
#[path = "discovery/mpnet_graph.rs"]
mod mpnet_graph;

use mercato_tests::{Host, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn catalog_host(dir: &std::path::Path) -> (Host, mercato_tests::Org) {
    let host = Host::start(dir).await;
    let org = host.org("catalog").await;
    for agent in [
        "pii-redactor",
        "unit-converter",
        "summarizer",
        "vendor-compliance",
    ] {
        host.publish(&org, agent).await;
    }
    (host, org)
}

async fn discover(host: &Host, query: Value) -> Vec<String> {
    let (status, body) = host.post("/v1/discover", None, query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["capability"]["id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn paraphrased_needs_find_the_right_capability() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _) = catalog_host(dir.path()).await;
    for (need, expected) in [
        (
            "remove e-mail addresses and credit card numbers from a support ticket",
            "pii-redactor.redact",
        ),
        ("how many kilometres is 26 miles", "unit-converter.convert"),
        (
            "give me a short summary of this long article",
            "summarizer.summarize",
        ),
        (
            "is this supplier compliant with GDPR and HIPAA",
            "vendor-compliance.check-vendor",
        ),
        (
            "which personal data does this document contain",
            "pii-redactor.detect",
        ),
        ("extract the main keywords of a text", "summarizer.keywords"),
    ] {
        let ids = discover(&host, json!({ "need": need, "limit": 3 })).await;
        assert_eq!(
            ids.first().map(String::as_str),
            Some(expected),
            "{need}: {ids:?}"
        );
    }
    let (_, body) = host
        .post(
            "/v1/discover",
            None,
            json!({ "need": "redact emails", "limit": 1 }),
        )
        .await;
    let explanation = &body["results"][0]["explanation"];
    assert!(
        explanation["matched_terms"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert_eq!(body["embedder"], "hash-384");
    host.stop().await;
}

#[tokio::test]
async fn each_filter_excludes_what_it_should_and_only_that() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _) = catalog_host(dir.path()).await;
    let all = discover(&host, json!({ "need": "text", "limit": 20 })).await;
    assert_eq!(all.len(), 7, "{all:?}");
    // Category.
    let ids = discover(
        &host,
        json!({ "need": "text", "category": "privacy", "limit": 20 }),
    )
    .await;
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|i| i.starts_with("pii-redactor.")));
    // Expected cost: before any call, the base price plus the median fuel attestation
    // measured at the listed rate. The filter keeps exactly those at or under the cap.
    let mut expected = Vec::new();
    for id in &all {
        let (_, quote) = host
            .get(&format!("/v1/capabilities/{id}/quote"), None)
            .await;
        let cost = quote["expected_cost_micros"].as_u64().expect("cost");
        let (_, view) = host.get(&format!("/v1/capabilities/{id}"), None).await;
        let attested = view["attestation"]["fuel_p50"]
            .as_u64()
            .expect("attested fuel");
        let terms = &view["terms"];
        let rate = terms["micros_per_mfuel"].as_u64().expect("rate");
        let price = terms["price_micros"].as_u64().expect("price");
        assert_eq!(cost, price + (attested * rate).div_ceil(1_000_000), "{id}");
        if cost <= 2_500 {
            expected.push(id.clone());
        }
    }
    expected.sort();
    let mut ids = discover(
        &host,
        json!({ "need": "text", "max_price_micros": 2_500, "limit": 20 }),
    )
    .await;
    ids.sort();
    assert_eq!(ids, expected);
    assert!(
        (1..all.len()).contains(&ids.len()),
        "the cap splits the catalog: {ids:?}"
    );
    // Latency promise (converter 100 ms, redactor 250, others 500).
    let ids = discover(
        &host,
        json!({ "need": "text", "latency_ms_max": 250, "limit": 20 }),
    )
    .await;
    assert_eq!(ids.len(), 4);
    // Data policy: retention none excludes the summariser (24h) and the checker (30d);
    // jurisdiction UK only matches the converter.
    let ids = discover(
        &host,
        json!({ "need": "text", "data_policy": { "retention": "none" }, "limit": 20 }),
    )
    .await;
    assert_eq!(ids.len(), 4);
    let ids = discover(
        &host,
        json!({ "need": "text", "data_policy": { "jurisdiction": "uk" }, "limit": 20 }),
    )
    .await;
    assert!(
        ids.len() == 2 && ids.iter().all(|i| i.starts_with("unit-converter.")),
        "{ids:?}"
    );
    // Tags, uptime, rating.
    let ids = discover(
        &host,
        json!({ "need": "text", "tags": ["gdpr"], "limit": 20 }),
    )
    .await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(
        discover(&host, json!({ "need": "text", "uptime_min": 0.9999 }))
            .await
            .len(),
        0
    );
    assert_eq!(
        discover(&host, json!({ "need": "text", "rating_min": 1 }))
            .await
            .len(),
        0,
        "nothing is rated yet"
    );
    // Bad queries.
    for bad in [
        json!({ "need": "" }),
        json!({ "need": "x", "limit": 0 }),
        json!({ "need": "x", "uptime_min": 2 }),
        json!({ "needs": "x" }),
    ] {
        let (status, body) = host.post("/v1/discover", None, bad).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }
    host.stop().await;
}

#[tokio::test]
async fn observed_cost_moves_a_capability_across_the_price_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, org) = catalog_host(dir.path()).await;
    // The cap is the expected cost from attestation: listed now.
    let (_, quote) = host
        .get("/v1/capabilities/pii-redactor.redact/quote", None)
        .await;
    let cap = quote["expected_cost_micros"].as_u64().expect("cost");
    let query =
        json!({ "need": "redact personal data", "max_price_micros": cap, "category": "privacy" });
    assert!(
        discover(&host, query.clone())
            .await
            .contains(&"pii-redactor.redact".to_string())
    );
    // Calls on long texts burn more fuel than the attestation cases: the observed
    // median takes over and the expected cost passes the cap.
    let long = "Write to a@b.io or call +44 20 7946 0958. ".repeat(200);
    let (status, _) = host
        .invoke(
            &org.api_key,
            "pii-redactor.redact",
            json!({ "text": long }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !discover(&host, query)
            .await
            .contains(&"pii-redactor.redact".to_string())
    );
    host.stop().await;
}

#[tokio::test]
async fn results_survive_a_restart_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _) = catalog_host(dir.path()).await;
    let needs = [
        "anonymise customer records",
        "convert temperature",
        "vendor due diligence",
        "tl;dr",
    ];
    let mut before = Vec::new();
    for need in needs {
        let (_, body) = host
            .post("/v1/discover", None, json!({ "need": need, "limit": 7 }))
            .await;
        before.push(body);
    }
    host.stop().await;
    let host = Host::start(dir.path()).await;
    // The index came back from its dump, every point kept.
    let (_, health) = host.get("/healthz", None).await;
    let origin = health["index"].as_str().unwrap_or_default();
    assert!(
        origin.starts_with("reloaded:") && origin.contains(" 0 dropped, 0 inserted"),
        "{health}"
    );
    for (need, earlier) in needs.iter().zip(before) {
        let (_, body) = host
            .post("/v1/discover", None, json!({ "need": need, "limit": 7 }))
            .await;
        let ids = |b: &Value| {
            b["results"].as_array().map(|r| {
                r.iter()
                    .map(|x| (x["capability"]["id"].clone(), x["score"].clone()))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(ids(&body), ids(&earlier), "{need}");
    }
    host.stop().await;
}

/// The index is dumped while the host runs (not only at shutdown), so a
/// crash leaves a dump that covers what was published before it.
#[tokio::test]
async fn the_index_is_dumped_periodically_while_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = mercato_tests::test_config(dir.path());
    config.settlement_tick_ms = 20;
    config.index_save_ms = 100;
    let host = Host::start_with(config).await;
    let org = host.org("catalog").await;
    host.publish(&org, "unit-converter").await;
    let manifest = dir.path().join("index").join("manifest.json");
    let mut listed = Vec::new();
    for _ in 0..250 {
        if let Ok(bytes) = std::fs::read(&manifest) {
            let manifest: Value = serde_json::from_slice(&bytes).expect("manifest JSON");
            listed = manifest["points"]
                .as_array()
                .expect("points")
                .iter()
                .filter_map(|p| p[0].as_str().map(str::to_string))
                .collect();
            if listed.iter().any(|k| k.starts_with("unit-converter.")) {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        listed.iter().any(|k| k.starts_with("unit-converter.")),
        "no dump lists the published capabilities: {listed:?}"
    );
    host.stop().await;
}

/// The sentence-embedding model's directory: `MERCATO_EMBEDDING_MODEL`, as
/// scripts/test sets it (scripts/fetch-model).
#[cfg(feature = "model")]
fn model_dir() -> std::path::PathBuf {
    let dir = std::env::var("MERCATO_EMBEDDING_MODEL")
        .expect("MERCATO_EMBEDDING_MODEL names the model directory (scripts/fetch-model)");
    std::fs::canonicalize(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"))
}

/// Whether the model directory has ONNX Runtime's library (`onnx/`).
/// scripts/fetch-model installs it on x86-64 Linux, where it must be there:
/// elsewhere the model runs on candle alone.
#[cfg(feature = "model")]
fn has_onnx(model: &std::path::Path) -> bool {
    let present = model.join("onnx/libonnxruntime.so").is_file();
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        assert!(
            present,
            "{}/onnx: no ONNX Runtime (scripts/fetch-model installs it)",
            model.display()
        );
    }
    present
}

/// ONNX Runtime, which the host prefers, runs the graph written from the
/// model's own weights (the attention's in 8 bits): every text's vector
/// within a cosine of 0.995 of candle's, one at a time and in a padded
/// batch, and each need's nearest description the same under both.
#[cfg(feature = "model")]
#[test]
fn onnx_runtime_runs_the_model_s_weights_as_candle_does() {
    use mercato_host::discovery::{Embedder, ModelEmbedder, OnnxEmbedder, dot, load_model};
    let model = model_dir();
    if !has_onnx(&model) {
        return;
    }
    let f32_model = ModelEmbedder::load(&model).expect("candle");
    let onnx = OnnxEmbedder::load(&model).expect("ONNX Runtime");
    // The same weights' digest; the runtime's stored vectors kept apart.
    let digest = f32_model.name().rsplit('@').next().expect("digest");
    assert_eq!(
        onnx.name(),
        format!("model:all-MiniLM-L6-v2-onnx-int8-attention@{digest}")
    );
    assert_eq!(
        load_model(&model).expect("model").name(),
        onnx.name(),
        "the host prefers ONNX Runtime"
    );
    let descriptions = [
        "Redacts personal data (e-mail addresses, phone and card numbers) from text.",
        "Converts a quantity between units of length, mass and temperature.",
        "Summarises a long document in a few sentences.",
        "Checks a vendor against GDPR, HIPAA and SOC 2 requirements.",
        "Translates text between English, French and German.",
    ];
    let needs = [
        "remove e-mail addresses and credit card numbers from a support ticket",
        "how many kilometres is 26 miles",
        "give me a short summary of this long article",
        "is this supplier compliant with GDPR",
        "put this paragraph into French",
    ];
    let texts: Vec<&str> = descriptions.iter().chain(&needs).copied().collect();
    // One at a time and in a batch (padded to the longest): the same.
    let batch = onnx.embed_many(&texts);
    for (text, batched) in texts.iter().zip(&batch) {
        let (a, b) = (f32_model.embed(text), onnx.embed(text));
        assert_eq!(b.len(), 384);
        assert!(dot(&a, &b) > 0.995, "{text}: cosine {}", dot(&a, &b));
        assert!(
            // The 8-bit attention's input scale is the whole batch's: a
            // text's vector moves with its batch, within rounding.
            dot(&b, batched) > 0.995,
            "{text}: batched {}",
            dot(&b, batched)
        );
    }
    let nearest = |model: &dyn Embedder, need: &str| {
        let n = model.embed(need);
        (0..descriptions.len())
            .max_by(|i, j| {
                dot(&n, &model.embed(descriptions[*i]))
                    .total_cmp(&dot(&n, &model.embed(descriptions[*j])))
            })
            .expect("descriptions")
    };
    for (i, need) in needs.iter().enumerate() {
        assert_eq!(nearest(&f32_model, need), i, "{need} (f32)");
        assert_eq!(nearest(&onnx, need), i, "{need} (ONNX Runtime)");
    }
}

/// A need of several sentences: both runtimes pool each sentence from the
/// one pass over the need, the whole need's vector first and unchanged, and
/// each sentence's vector is nearest to what that sentence asks for.
#[cfg(feature = "model")]
#[test]
fn a_need_s_sentences_are_pooled_from_one_pass_by_both_runtimes() {
    use mercato_host::discovery::{Embedder, ModelEmbedder, OnnxEmbedder, dot, embed_need};
    let model = model_dir();
    let mut runtimes: Vec<Box<dyn Embedder>> =
        vec![Box::new(ModelEmbedder::load(&model).expect("candle"))];
    if has_onnx(&model) {
        runtimes.push(Box::new(OnnxEmbedder::load(&model).expect("ONNX Runtime")));
    }
    let descriptions = [
        "Redacts personal data (e-mail addresses, phone and card numbers) from text.",
        "Converts a quantity between units of length, mass and temperature.",
        "Translates text between English, French and German.",
    ];
    let need = "Strip the e-mail addresses and card numbers out of this ticket. \
                Then tell me how many kilometres 26 miles is!\nAnd put the reply into French.";
    let mut pooled = Vec::new();
    for runtime in &runtimes {
        let vectors = embed_need(runtime.as_ref(), need);
        let vectors: Vec<&[f32]> = vectors.chunks_exact(384).collect();
        assert_eq!(
            vectors.len(),
            4,
            "{}: the whole and three sentences",
            runtime.name()
        );
        let whole = runtime.embed(need);
        assert!(dot(vectors[0], &whole) > 0.9999, "{}", runtime.name());
        for (i, sentence) in vectors[1..].iter().enumerate() {
            assert!((dot(sentence, sentence) - 1.0).abs() < 1e-4, "unit length");
            let nearest = (0..descriptions.len())
                .max_by(|a, b| {
                    let score = |d: usize| dot(sentence, &runtime.embed(descriptions[d]));
                    score(*a).total_cmp(&score(*b))
                })
                .expect("descriptions");
            assert_eq!(nearest, i, "{}: sentence {}", runtime.name(), i + 1);
        }
        pooled.push(vectors.concat());
        // A need of one sentence is one vector.
        let one = embed_need(runtime.as_ref(), "how many kilometres is 26 miles");
        assert_eq!(one.len(), 384);
    }
    if let [candle, onnx] = &pooled[..] {
        for (a, b) in candle.chunks_exact(384).zip(onnx.chunks_exact(384)) {
            assert!(
                dot(a, b) > 0.995,
                "the runtimes agree: cosine {}",
                dot(a, b)
            );
        }
    }
}

/// A model the ONNX graph cannot reproduce (here a BERT with another
/// activation) is left to candle (logged), rather than stopping the host,
/// dropping to the built-in embedder or running a different function.
#[cfg(feature = "model")]
#[test]
fn a_model_the_onnx_graph_cannot_reproduce_is_left_to_candle() {
    use mercato_host::discovery::load_model;
    let model = model_dir();
    if !has_onnx(&model) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["tokenizer.json", "model.safetensors"] {
        std::os::unix::fs::symlink(model.join(file), dir.path().join(file)).expect("symlink");
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).expect("config"))
            .expect("json");
    config["hidden_act"] = "relu".into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("write");
    std::fs::create_dir(dir.path().join("onnx")).expect("mkdir");
    std::os::unix::fs::symlink(
        model.join("onnx/libonnxruntime.so"),
        dir.path().join("onnx/libonnxruntime.so"),
    )
    .expect("symlink");
    let loaded = load_model(dir.path()).expect("candle runs it");
    assert!(
        loaded.name().starts_with("model:") && !loaded.name().contains("onnx"),
        "{}",
        loaded.name()
    );
    // Without the f32 weights there is nothing to fall back to: an error.
    std::fs::remove_file(dir.path().join("model.safetensors")).expect("rm");
    let error = load_model(dir.path()).err().expect("no model");
    assert!(error.contains("model.safetensors"), "{error}");
}

/// Discovery with the sentence-embedding model (built with `--features
/// model`; `MERCATO_EMBEDDING_MODEL` names the directory, as scripts/test
/// sets it): the same paraphrased needs find the same capabilities, the
/// vectors are stored, and a restart reuses them with equal answers.
#[cfg(feature = "model")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sentence_embedding_model_finds_paraphrased_needs_and_survives_a_restart() {
    let model = model_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = mercato_tests::test_config(dir.path());
    config.embedding_model = Some(model.clone());
    let host = Host::start_with(config.clone()).await;
    let (_, health) = host.get("/healthz", None).await;
    let name = health["embedder"].as_str().unwrap_or_default();
    // ONNX Runtime when scripts/fetch-model installed it (x86-64 Linux),
    // else candle.
    let runs_as = if has_onnx(&model) {
        "model:all-MiniLM-L6-v2-onnx-int8-attention@"
    } else {
        "model:all-MiniLM-L6-v2@"
    };
    assert!(name.starts_with(runs_as), "{health}");
    let org = host.org("catalog").await;
    for agent in [
        "pii-redactor",
        "unit-converter",
        "summarizer",
        "vendor-compliance",
    ] {
        host.publish(&org, agent).await;
    }
    let needs = [
        (
            "remove e-mail addresses and credit card numbers from a support ticket",
            "pii-redactor.redact",
        ),
        ("how many kilometres is 26 miles", "unit-converter.convert"),
        (
            "give me a short summary of this long article",
            "summarizer.summarize",
        ),
        (
            "is this supplier compliant with GDPR and HIPAA",
            "vendor-compliance.check-vendor",
        ),
    ];
    let mut before = Vec::new();
    for (need, expected) in needs {
        let ids = discover(&host, json!({ "need": need, "limit": 3 })).await;
        assert_eq!(
            ids.first().map(String::as_str),
            Some(expected),
            "{need}: {ids:?}"
        );
        before.push(ids);
    }
    // Each need was embedded once; asked again, its vector is kept (the
    // model does not run) and the answer is the same.
    let embedded = host.metric("mercato_discovery_needs_embedded_total").await;
    assert_eq!(embedded, needs.len() as f64);
    for ((need, _), expected) in needs.iter().zip(&before) {
        assert_eq!(
            &discover(&host, json!({ "need": need, "limit": 3 })).await,
            expected
        );
    }
    assert_eq!(
        host.metric("mercato_discovery_needs_embedded_total").await,
        embedded
    );
    assert_eq!(
        host.metric("mercato_discovery_need_vectors_kept_total")
            .await,
        needs.len() as f64
    );
    let data_dir = host.data_dir.clone();
    host.stop().await;
    // Restart: the stored vectors are reused (no re-embedding), answers equal.
    let store = mercato_host::store::Store::open(&data_dir, std::time::Duration::from_millis(50))
        .expect("store");
    let vectors = store.len(mercato_host::store::Tree::Vectors);
    assert_eq!(vectors, 7, "one vector per listed capability");
    store.close().await.expect("close");
    drop(store);
    let host = Host::start_with(config).await;
    for ((need, _), expected) in needs.iter().zip(&before) {
        assert_eq!(
            &discover(&host, json!({ "need": need, "limit": 3 })).await,
            expected
        );
    }
    host.stop().await;
}

/// A flood of new needs waits on its sender: one organisation sending many
/// needs at once has two at the model and the rest refused with 429
/// `rate_limited` and a Retry-After, while another organisation's need,
/// sent in the middle of the flood, is answered.
#[cfg(feature = "model")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_needs_waits_on_its_sender() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = mercato_tests::test_config(dir.path());
    config.embedding_model = Some(model_dir());
    let host = Host::start_with(config).await;
    let flooder = host.org("flooder").await;
    let other = host.org("other").await;
    host.publish(&flooder, "unit-converter").await;
    let ask = |key: String, need: String| {
        let request = host
            .http
            .post(format!("{}/v1/discover", host.url))
            .bearer_auth(key)
            .json(&json!({ "need": need, "limit": 3 }));
        async move {
            let response = request.send().await.expect("request reaches the host");
            let status = response.status();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.expect("JSON");
            (status, retry_after, body)
        }
    };
    // Each need different, so none is answered from the kept vectors.
    let flood: Vec<_> = (0..16)
        .map(|i| {
            ask(
                flooder.api_key.clone(),
                format!("convert a distance of {i} miles into kilometres for a running plan"),
            )
        })
        .collect();
    let (answers, (status, _, body)) = tokio::join!(
        futures::future::join_all(flood),
        ask(
            other.api_key.clone(),
            "how heavy is 12 stone in kilograms".into()
        )
    );
    assert_eq!(status, StatusCode::OK, "the other organisation: {body}");
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(
        !refused.is_empty(),
        "16 needs at once, none refused: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    for (_, retry_after, body) in &refused {
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        assert!(retry_after.is_some(), "{body}");
    }
    for (status, _, body) in &answers {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::TOO_MANY_REQUESTS,
            "{status}: {body}"
        );
    }
    // The flood is over: its sender is answered again.
    let (status, _, body) = ask(flooder.api_key.clone(), "convert 5 miles to km".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    host.stop().await;
}

/// Without a sentence-embedding model the host ranks with the built-in
/// embedder and `/healthz` says so, with the way to give it one.
#[tokio::test]
async fn healthz_says_when_discovery_runs_on_the_built_in_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let (_, health) = host.get("/healthz", None).await;
    assert_eq!(health["embedder"], "hash-384", "{health}");
    let why = health["embedder_fallback"].as_str().unwrap_or_default();
    assert!(
        why.contains("no sentence-embedding model")
            && why.contains(&dir.path().join("model").display().to_string()),
        "{health}"
    );
    host.stop().await;
}

/// A model put in `DATA_DIR/model` (`scripts/fetch-model DATA_DIR/model`)
/// is used without any configuration, and `/healthz` reports no fallback;
/// a broken one there stops the start instead of quietly ranking worse.
#[cfg(feature = "model")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_in_the_data_directory_is_the_default() {
    let model = model_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(&model, dir.path().join("model")).expect("symlink");
    let host = Host::start(dir.path()).await;
    let (_, health) = host.get("/healthz", None).await;
    // Named by its directory, its runtime and its weights' digest (12 hex
    // digits of the SHA-256 of model.safetensors), so vectors stored under
    // it are its own.
    let digest = |file: &str| {
        use sha2::Digest as _;
        let bytes = std::fs::read(model.join(file)).expect("weights");
        sha2::Sha256::digest(&bytes)[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let expected = if has_onnx(&model) {
        format!(
            "model:model-onnx-int8-attention@{}",
            digest("model.safetensors")
        )
    } else {
        format!("model:model@{}", digest("model.safetensors"))
    };
    assert_eq!(health["embedder"], expected, "{health}");
    assert!(health.get("embedder_fallback").is_none(), "{health}");
    host.stop().await;

    let broken = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(broken.path().join("model")).expect("mkdir");
    std::fs::write(
        broken.path().join("model/model.safetensors"),
        b"not a model",
    )
    .expect("write");
    match mercato_host::market::Market::open(mercato_tests::test_config(broken.path())).await {
        Err(e) => assert!(e.to_string().contains("embedding model"), "{e}"),
        Ok(_) => panic!("a broken model in DATA_DIR/model must stop the start"),
    }
}
