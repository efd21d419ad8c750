//! How the 2021 servo firmware reads its JSON: ArduinoJson 6's `deserializeJson` and its conversions, as plain
//! functions over [`serde_json::Value`].
//!
//! What the firmware relies on, and what differs from strict JSON:
//! - [`parse`] keeps whatever it built before an error: `{"pin":4,"state":"ON"` (no closing brace) is an object
//!   with both members, and a member whose value could not be read is there as `null`. Nothing at all (an empty
//!   body, or garbage from the first byte) is `null`. Text after the first complete value is ignored. Keys may be
//!   unquoted or single-quoted, strings single-quoted; a repeated key keeps its last value.
//! - [`as_int`] is `as<int>()` / `as<long>()`: a boolean is 0 or 1, a number in range is truncated toward zero,
//!   a string holding nothing but a number is that number, and everything else (null, an object, a number out
//!   of range, any other string) is 0.
//! - [`as_text`] is `as<String>()`: a string is itself, anything else its JSON (`null` for a missing member).

use serde_json::{Map, Number, Value};

/// Reads `text` as `deserializeJson` does (see the module documentation).
pub fn parse(text: &str) -> Value {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let mut out = Value::Null;
    let _ = p.value(&mut out, 0);
    out
}

/// The member `key` of an object, `null` when absent or when `doc` is not an object (`doc["key"]`).
pub fn member<'a>(doc: &'a Value, key: &str) -> &'a Value {
    doc.get(key).unwrap_or(&Value::Null)
}

/// `as<T>()` for an integer type with the given range (see the module documentation).
pub fn as_int(v: &Value, min: i64, max: i64) -> i64 {
    let in_range = |x: f64| x >= min as f64 && x <= max as f64;
    match v {
        Value::Bool(b) => i64::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if (min..=max).contains(&i) => i,
            (None, Some(f)) if in_range(f) => f.trunc() as i64,
            _ => 0,
        },
        Value::String(s) => match parse(s) {
            // The whole string must be the number.
            Value::Number(n) if number_len(s.as_bytes()) == s.len() => as_int(&Value::Number(n), min, max),
            _ => 0,
        },
        _ => 0,
    }
}

/// `as<int>()` on the ESP32 (32 bits).
pub fn as_i32(v: &Value) -> i32 {
    as_int(v, i32::MIN.into(), i32::MAX.into()) as i32
}

/// `as<String>()` (see the module documentation).
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Nesting ArduinoJson 6 accepts by default.
const NESTING_LIMIT: usize = 10;

/// Why parsing stopped (only that it did matters: what was built so far stays).
struct Stop;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Reads one value into `out`, which holds what was built when it stops.
    fn value(&mut self, out: &mut Value, depth: usize) -> Result<(), Stop> {
        self.skip_spaces();
        match self.peek().ok_or(Stop)? {
            b'{' if depth < NESTING_LIMIT => self.object(out, depth + 1),
            b'[' if depth < NESTING_LIMIT => self.array(out, depth + 1),
            b'{' | b'[' => Err(Stop),
            q @ (b'"' | b'\'') => {
                *out = Value::String(self.quoted(q)?);
                Ok(())
            }
            _ => {
                *out = self.literal()?;
                Ok(())
            }
        }
    }

    fn object(&mut self, out: &mut Value, depth: usize) -> Result<(), Stop> {
        self.i += 1;
        *out = Value::Object(Map::new());
        let Value::Object(map) = out else { unreachable!("just made an object") };
        self.skip_spaces();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_spaces();
            let key = match self.peek().ok_or(Stop)? {
                q @ (b'"' | b'\'') => self.quoted(q)?,
                _ => self.bare_key()?,
            };
            self.skip_spaces();
            if self.peek() != Some(b':') {
                return Err(Stop);
            }
            self.i += 1;
            // The member is there (null) before its value is read.
            let slot = map.entry(key).or_insert(Value::Null);
            *slot = Value::Null;
            self.value(slot, depth)?;
            self.skip_spaces();
            match self.peek().ok_or(Stop)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
        }
    }

    fn array(&mut self, out: &mut Value, depth: usize) -> Result<(), Stop> {
        self.i += 1;
        *out = Value::Array(Vec::new());
        let Value::Array(items) = out else { unreachable!("just made an array") };
        self.skip_spaces();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            items.push(Value::Null);
            let last = items.last_mut().expect("just pushed");
            self.value(last, depth)?;
            self.skip_spaces();
            match self.peek().ok_or(Stop)? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
        }
    }

    fn quoted(&mut self, quote: u8) -> Result<String, Stop> {
        self.i += 1;
        let mut bytes = Vec::new();
        loop {
            let c = self.peek().ok_or(Stop)?;
            self.i += 1;
            match c {
                c if c == quote => return Ok(String::from_utf8_lossy(&bytes).into_owned()),
                b'\\' => {
                    let e = self.peek().ok_or(Stop)?;
                    self.i += 1;
                    match e {
                        b'n' => bytes.push(b'\n'),
                        b't' => bytes.push(b'\t'),
                        b'r' => bytes.push(b'\r'),
                        b'b' => bytes.push(8),
                        b'f' => bytes.push(12),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or(Stop)?;
                            let code = u32::from_str_radix(std::str::from_utf8(hex).map_err(|_| Stop)?, 16)
                                .map_err(|_| Stop)?;
                            self.i += 4;
                            let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                            bytes.extend_from_slice(ch.to_string().as_bytes());
                        }
                        other => bytes.push(other),
                    }
                }
                other => bytes.push(other),
            }
        }
    }

    fn bare_key(&mut self) -> Result<String, Stop> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
            self.i += 1;
        }
        if self.i == start {
            return Err(Stop);
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// `true`, `false`, `null` or a number.
    fn literal(&mut self) -> Result<Value, Stop> {
        let rest = &self.s[self.i..];
        for (word, value) in [("true", Value::Bool(true)), ("false", Value::Bool(false)), ("null", Value::Null)] {
            if rest.starts_with(word.as_bytes()) {
                self.i += word.len();
                return Ok(value);
            }
        }
        let len = number_len(rest);
        let text = std::str::from_utf8(&rest[..len]).map_err(|_| Stop)?;
        let number = if let Ok(i) = text.parse::<i64>() {
            Number::from(i)
        } else {
            text.parse::<f64>().ok().and_then(Number::from_f64).ok_or(Stop)?
        };
        self.i += len;
        Ok(Value::Number(number))
    }
}

/// How many bytes at the start of `s` look like a number (sign, digits, point, exponent).
fn number_len(s: &[u8]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')).count()
}
