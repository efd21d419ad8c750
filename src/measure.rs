//! What the load tools share: durations as the command line gives them, and metrics read from `/metrics`.

use std::time::Duration;

/// A duration such as `30s`, `2m` or `45` (seconds).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.strip_suffix('m') {
        Some(n) => (n, 60.0),
        None => (s.strip_suffix('s').unwrap_or(s), 1.0),
    };
    match number.parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(Duration::from_secs_f64(n * unit)),
        _ => Err(format!("`{s}` is not a duration like 30s, 2m or 45")),
    }
}

/// The value of an unlabelled metric in Prometheus' text format, if it is there.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_command_line_gives_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0").is_err() && parse_duration("soon").is_err() && parse_duration("-3s").is_err());
    }

    #[test]
    fn an_unlabelled_metric_is_read_by_its_whole_name() {
        let text = "# HELP x\nplarail_resident_bytes_max 9\nplarail_resident_bytes 1234\n";
        assert_eq!(metric(text, "plarail_resident_bytes"), Some(1234.0));
        assert_eq!(metric(text, "plarail_cpu_seconds_total"), None);
    }
}
