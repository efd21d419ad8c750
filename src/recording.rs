//! A recorded session read back: from a gateway's data directory (its journal) or from a file that
//! `journal export` wrote (JSON lines), up to the first entry that cannot be read; times on the command line;
//! and `journal export` itself.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use wire::record::{Entry, Session, What};

/// Flags of `journal export`.
#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// The gateway's data directory (`serve --data-dir`), with the gateway stopped.
    pub data_dir: PathBuf,
    /// From this time: `+DURATION` after the first entry (`+90s`, `+15m`), Unix milliseconds, or
    /// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this time (same forms as --from).
    #[arg(long)]
    pub to: Option<String>,
}

/// What was read of a recording.
pub(crate) struct Recording {
    /// Every entry read, in order.
    pub entries: Vec<Entry>,
    /// Where and why reading stopped before the end (damage, truncation).
    pub damage: Option<String>,
}

impl Recording {
    /// Reads the recording at `source`: a data directory, or an exported file of JSON lines.
    pub fn read(source: &Path) -> anyhow::Result<Recording> {
        if source.is_dir() {
            let history = gateway::journal::read_history(source)?;
            let mut entries = Vec::with_capacity(history.entries.len());
            for (seq, text) in &history.entries {
                match serde_json::from_str::<Entry>(text) {
                    Ok(e) => entries.push(Entry { seq: Some(*seq), ..e }),
                    Err(e) => {
                        let damage = format!("journal entry {seq} cannot be read ({e})");
                        return Ok(Recording { entries, damage: Some(damage) });
                    }
                }
            }
            let damage = history.damage.map(|d| match entries.last().and_then(|e| e.seq) {
                Some(seq) => format!("the journal is damaged after entry {seq} ({d})"),
                None => format!("the journal is damaged before its first entry ({d})"),
            });
            Ok(Recording { entries, damage })
        } else {
            let text = std::fs::read_to_string(source).with_context(|| format!("cannot read {}", source.display()))?;
            Ok(Recording::from_lines(&text))
        }
    }

    /// Reads exported JSON lines, up to the first line that is not an entry (a truncated last line included).
    pub fn from_lines(text: &str) -> Recording {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match serde_json::from_str::<Entry>(line) {
                Ok(e) => entries.push(e),
                Err(e) => return Recording { entries, damage: Some(format!("line {} cannot be read ({e})", n + 1)) },
            }
        }
        Recording { entries, damage: None }
    }

    /// The first entry's time, ms since the Unix epoch.
    pub fn first_unix_ms(&self) -> Option<u64> {
        self.entries.first().map(|e| e.unix_ms)
    }
}

/// A time on the command line, as Unix milliseconds: `+DURATION` after `origin`, Unix milliseconds, or
/// `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
pub(crate) fn parse_time(s: &str, origin: u64) -> anyhow::Result<u64> {
    if let Some(after) = s.strip_prefix('+') {
        let d = crate::measure::parse_duration(after).map_err(anyhow::Error::msg)?;
        return Ok(origin + d.as_millis() as u64);
    }
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    utc_ms(s).with_context(|| format!("`{s}` is not a time: +DURATION (+90s, +15m), Unix ms, or 2026-12-07T14:32:00Z"))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as Unix milliseconds.
fn utc_ms(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let ms = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 24 + h) * 60 + min) * 60_000 + sec * 1000 + ms).ok()
}

/// A session of a recording and the entries that followed it (up to the next session).
pub(crate) struct SessionRun<'a> {
    /// How it started.
    pub session: &'a Session,
    /// When, Unix ms.
    pub start_unix_ms: u64,
    /// What followed, in order.
    pub entries: &'a [Entry],
}

impl Recording {
    /// The session under way at `at` (Unix ms; the first if `None`), with the entries that followed it.
    pub fn session_at(&self, at: Option<u64>) -> Option<SessionRun<'_>> {
        let starts: Vec<usize> =
            (0..self.entries.len()).filter(|&i| matches!(self.entries[i].what, What::Session { .. })).collect();
        let pick = match at {
            None => *starts.first()?,
            Some(t) => *starts.iter().rev().find(|&&i| self.entries[i].unix_ms <= t).or(starts.first())?,
        };
        let end = starts.iter().find(|&&i| i > pick).copied().unwrap_or(self.entries.len());
        let What::Session { session } = &self.entries[pick].what else { unreachable!("picked a session") };
        Some(SessionRun { session, start_unix_ms: self.entries[pick].unix_ms, entries: &self.entries[pick + 1..end] })
    }
}

/// `journal export`: the entries between the times as JSON lines on standard output; says where a damaged
/// journal stopped it (and exits non-zero then).
pub(crate) fn export(args: ExportArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.data_dir.is_dir(), "{} is not a directory (a gateway's --data-dir)", args.data_dir.display());
    let recording = Recording::read(&args.data_dir)?;
    let origin = recording.first_unix_ms().unwrap_or(0);
    let from = args.from.as_deref().map(|t| parse_time(t, origin)).transpose()?.unwrap_or(0);
    let to = args.to.as_deref().map(|t| parse_time(t, origin)).transpose()?.unwrap_or(u64::MAX);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut written = 0usize;
    for e in recording.entries.iter().filter(|e| (from..=to).contains(&e.unix_ms)) {
        writeln!(out, "{}", wire::encode(e))?;
        written += 1;
    }
    out.flush()?;
    eprintln!("{written} entries exported");
    match recording.damage {
        Some(damage) => {
            eprintln!("error: stopped early: {damage}");
            Ok(false)
        }
        None => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_every_form() {
        assert_eq!(parse_time("2026-12-07T00:00:00Z", 0).unwrap(), 1_796_601_600_000);
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z", 0).unwrap(), 1_500);
        assert_eq!(parse_time("+90s", 1_000).unwrap(), 91_000);
        assert_eq!(parse_time("+2m", 0).unwrap(), 120_000);
        assert_eq!(parse_time("12345", 0).unwrap(), 12_345);
        assert!(parse_time("yesterday", 0).is_err());
        assert!(parse_time("2026-13-07T00:00:00Z", 0).is_err());
    }

    #[test]
    fn a_truncated_export_reads_up_to_its_last_whole_line() {
        let text = "{\"unix_ms\":1,\"mode\":\"sim\"}\n{\"unix_ms\":2,\"operation\":\"auto\"}\n{\"unix_ms\":3,\"sens";
        let r = Recording::from_lines(text);
        assert_eq!(r.entries.len(), 2);
        assert!(r.damage.as_deref().is_some_and(|d| d.starts_with("line 3 cannot be read")), "{:?}", r.damage);
    }
}
