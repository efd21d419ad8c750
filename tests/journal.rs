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
                assert!(journal.history(10).unwrap().is_empty(), "page {page}: a new journal");
            }
            Opened::Existing => {
                // The damage hit a page the store does not use (everything reads back), or one of the two commit
                // slots of its header: then it opens at the other, the commit before the last (one transaction,
                // here one command, rolled back; a known limit of the store).
                let n = journal.history(500).unwrap().len();
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
