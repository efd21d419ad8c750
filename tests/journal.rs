//! The journal across damage: a damaged or empty journal file is kept aside and a new one started, with the
//! reason; the store's own panics on damage never reach the server.

use gateway::journal::{Entry, Journal, Opened};
use rand::{Rng, SeedableRng};
use sim::layout::OnOff;

const PAGE: usize = 4096;

/// A journal in `dir` with some device states and history.
async fn filled(dir: &std::path::Path) {
    let (journal, opened) = Journal::open(dir).unwrap();
    assert_eq!(opened, Opened::Created);
    let writer = journal.writer(vec!["a".into(), "b".into()], |_| OnOff::Off).unwrap();
    for i in 0..200 {
        let entry = serde_json::json!({ "target": "a", "value": "OFF", "result": "applied", "n": i });
        writer.commit(vec![Entry::Device(i % 2), Entry::History(entry)]).await.unwrap();
    }
}

#[tokio::test]
async fn a_journal_with_a_page_of_random_bytes_is_kept_aside_or_read_never_a_panic() {
    let original = tempfile::tempdir().unwrap();
    filled(original.path()).await;
    let bytes = std::fs::read(original.path().join("journal.redb")).unwrap();
    let pages = bytes.len().div_ceil(PAGE).min(48);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut recovered = 0;
    for page in 0..pages {
        let dir = tempfile::tempdir().unwrap();
        let mut damaged = bytes.clone();
        let end = ((page + 1) * PAGE).min(damaged.len());
        rng.fill(&mut damaged[page * PAGE..end]);
        std::fs::write(dir.path().join("journal.redb"), &damaged).unwrap();
        let (journal, opened) = Journal::open(dir.path()).unwrap_or_else(|e| panic!("page {page}: {e}"));
        match opened {
            Opened::Recovered { aside, reason } => {
                recovered += 1;
                assert_eq!(std::fs::read(&aside).unwrap(), damaged, "page {page}: the damaged file is kept as it was");
                assert!(!reason.is_empty());
                assert!(journal.history(10, None).unwrap().is_empty(), "page {page}: a new journal");
            }
            Opened::Existing => {
                // The damage hit a page the store does not use (everything reads back), or one of the two commit
                // slots of its header: then it opens at the other, the commit before the last (one transaction,
                // here one command, rolled back; a known limit of the store).
                let n = journal.history(500, None).unwrap().len();
                assert!(n == 200 || n == 199, "page {page}: {n} entries");
            }
            Opened::Created => panic!("page {page}: the file was there"),
        }
    }
    assert!(recovered > 0, "some damage is found");
}

#[tokio::test]
async fn an_empty_journal_file_is_kept_aside_not_taken_for_a_new_journal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("journal.redb"), b"").unwrap();
    let (_, opened) = Journal::open(dir.path()).unwrap();
    let Opened::Recovered { aside, reason } = opened else { panic!("{opened:?}") };
    assert!(aside.exists() && reason.contains("empty"), "{aside:?}: {reason}");
    // Opened again, the new journal is an existing one.
    let (_, again) = Journal::open(dir.path()).unwrap();
    assert_eq!(again, Opened::Existing);
}

/// The history keeps only its latest entries, and is read a page at a time.
#[tokio::test]
async fn the_history_is_bounded_and_read_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(dir.path()).unwrap();
    let journal = journal.keep(50);
    let writer = journal.writer(vec!["a".into()], |_| OnOff::Off).unwrap();
    for i in 0..200 {
        writer.commit(vec![Entry::History(serde_json::json!({ "n": i }))]).await.unwrap();
    }
    let all = journal.history(1000, None).unwrap();
    assert_eq!(all.len(), 50, "only the latest 50 kept");
    assert_eq!((all[0]["seq"].as_u64(), all[49]["seq"].as_u64()), (Some(199), Some(150)));
    let page = journal.history(10, Some(160)).unwrap();
    let seqs: Vec<u64> = page.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (150..160).rev().collect::<Vec<_>>());
    let size = std::fs::metadata(dir.path().join("journal.redb")).unwrap().len();
    for i in 0..2_000 {
        writer.commit(vec![Entry::History(serde_json::json!({ "n": i, "pad": "x".repeat(100) }))]).await.unwrap();
    }
    assert_eq!(journal.history(1000, None).unwrap().len(), 50);
    let grown = std::fs::metadata(dir.path().join("journal.redb")).unwrap().len();
    assert!(grown < size + (4 << 20), "the file stays bounded: {size} -> {grown} bytes");
}

/// `/api/history` pages (at most 500 entries, `before` and `next`), refuses a larger page, and tells a caller
/// beyond the reads allowed at once to come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_endpoint_pages_and_limits_its_callers() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(dir.path()).unwrap();
    let journal = std::sync::Arc::new(journal);
    let track = hil::track::Track::start(
        crate::support::layout_2021(),
        hil::track::Setup { config: crate::support::config(), ..Default::default() },
    )
    .await
    .unwrap();
    let options = gateway::core::Options { journal: Some(journal), ..Default::default() };
    let core = gateway::core::Core::start(track.clone(), options).await.unwrap();
    let chofu_b3 = track.layout().device_id("chofu_b3").unwrap();
    crate::support::until("ready", std::time::Duration::from_secs(10), async || track.ready()).await;
    for i in 0..7 {
        let state = if i % 2 == 0 { OnOff::Off } else { OnOff::On };
        core.apply(
            sim::interlocking::Request::Device { device: chofu_b3, state },
            wire::record::Caller::new("test", "here"),
        )
        .await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway::server::serve(listener, gateway::server::router(core.clone()), std::future::pending()));
    let get = async |query: &str| {
        let r = reqwest::get(format!("http://{addr}/api/history?{query}")).await.unwrap();
        let status = r.status().as_u16();
        (status, serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).unwrap())
    };
    let seqs = |v: &serde_json::Value| {
        v["history"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    // Everything, newest first: the session's start, its boards, the seven commands.
    let (status, all) = get("limit=500").await;
    assert_eq!(status, 200);
    let all = seqs(&all);
    assert_eq!(all, (0..all.len() as u64).rev().collect::<Vec<_>>());
    // The same, three at a time.
    let (mut paged, mut query) = (Vec::new(), "limit=3".to_string());
    loop {
        let (status, page) = get(&query).await;
        assert_eq!(status, 200);
        let got = seqs(&page);
        assert!(got.len() == 3 || page["next"].is_null(), "{page}");
        paged.extend(got);
        if page["next"].is_null() {
            break;
        }
        query = format!("limit=3&before={}", page["next"]);
    }
    assert_eq!(paged, all);
    let (status, e) = get("limit=10000").await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("1..500"), "{e}");
    // Every read slot taken (as by slow readers): the next caller is told to come back.
    let held = core.history_reads.clone().acquire_many_owned(gateway::core::HISTORY_READS as u32).await.unwrap();
    assert_eq!(get("limit=3").await.0, 429);
    drop(held);
    assert_eq!(get("limit=3").await.0, 200);
    track.stop();
}
