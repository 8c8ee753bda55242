//! The few JSON shapes bitcoin-cli prints, written the way it writes them: objects keep
//! their key order, two-space indentation, amounts as fixed 8-decimal numbers.
//!
//! A hand-written emitter rather than `serde_json`: the output side only, about sixty
//! lines, and no direct dependency for it.

use std::fmt::{self, Write};

use bitcoin::{Amount, SignedAmount};

/// A JSON value in bitcoin-cli's output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Bool(bool),
    Int(i64),
    /// An amount in BTC, printed as a number with eight decimals (`50.00000000`).
    Amount(SignedAmount),
    /// A float (verification progress, difficulty): the shortest form that reads back the
    /// same, in exponent notation when very small or large (`4.656542373906925e-10`), as
    /// bitcoin-cli prints regtest's difficulty.
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    /// Key/value pairs in output order.
    Object(Vec<(&'static str, Json)>),
}

impl Json {
    pub(crate) fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub(crate) fn int(n: impl Into<i64>) -> Json {
        Json::Int(n.into())
    }

    pub(crate) fn amount(a: Amount) -> Json {
        // Amounts above i64::MAX satoshis cannot exist in Bitcoin; saturate rather than wrap.
        Json::Amount(a.to_signed().unwrap_or(SignedAmount::MAX))
    }

    fn write_pretty(&self, out: &mut String, indent: usize) -> fmt::Result {
        const STEP: usize = 2;
        match self {
            Json::Bool(b) => write!(out, "{b}"),
            Json::Int(n) => write!(out, "{n}"),
            Json::Amount(a) => out.write_str(&format_signed_btc(*a)),
            Json::Float(f) if *f == 0.0 || (1e-5..1e17).contains(&f.abs()) => write!(out, "{f}"),
            Json::Float(f) if f.is_finite() => write!(out, "{f:e}"),
            Json::Float(_) => out.write_str("null"),
            Json::Str(s) => write_string(out, s),
            Json::Array(items) => {
                out.write_str("[\n")?;
                for (i, item) in items.iter().enumerate() {
                    write!(out, "{:w$}", "", w = indent + STEP)?;
                    item.write_pretty(out, indent + STEP)?;
                    out.write_str(if i + 1 < items.len() { ",\n" } else { "\n" })?;
                }
                write!(out, "{:indent$}]", "")
            }
            Json::Object(fields) => {
                out.write_str("{\n")?;
                for (i, (key, value)) in fields.iter().enumerate() {
                    write!(out, "{:w$}", "", w = indent + STEP)?;
                    write_string(out, key)?;
                    out.write_str(": ")?;
                    value.write_pretty(out, indent + STEP)?;
                    out.write_str(if i + 1 < fields.len() { ",\n" } else { "\n" })?;
                }
                write!(out, "{:indent$}}}", "")
            }
        }
    }
}

impl fmt::Display for Json {
    /// Pretty-printed, as bitcoin-cli prints a result.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_pretty(&mut out, 0)?;
        f.write_str(&out)
    }
}

fn write_string(out: &mut String, s: &str) -> fmt::Result {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => write!(out, "\\u{:04x}", u32::from(c))?,
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(())
}

/// An amount as bitcoin-cli prints it: BTC with exactly eight decimals (`50.00000000`).
pub(crate) fn format_btc(amount: Amount) -> String {
    let sat = amount.to_sat();
    format!("{}.{:08}", sat / 100_000_000, sat % 100_000_000)
}

/// A signed amount as bitcoin-cli prints it (`-0.00001410`).
pub(crate) fn format_signed_btc(amount: SignedAmount) -> String {
    let sign = if amount.is_negative() { "-" } else { "" };
    format!("{sign}{}", format_btc(amount.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_have_eight_decimals() {
        assert_eq!(
            format_btc(Amount::from_sat(50 * 100_000_000)),
            "50.00000000"
        );
        assert_eq!(format_btc(Amount::ZERO), "0.00000000");
        assert_eq!(format_btc(Amount::from_sat(1)), "0.00000001");
        assert_eq!(
            format_btc(Amount::from_sat(2_100_000_000_000_000)),
            "21000000.00000000"
        );
        assert_eq!(
            format_signed_btc(SignedAmount::from_sat(-1410)),
            "-0.00001410"
        );
        assert_eq!(
            format_signed_btc(SignedAmount::from_sat(-150_000_000)),
            "-1.50000000"
        );
        assert_eq!(
            format_signed_btc(SignedAmount::MIN),
            "-92233720368.54775808"
        );
    }

    #[test]
    fn pretty_printing_matches_bitcoin_cli() {
        let v = Json::Object(vec![
            ("name", Json::str("w\"1\"\n")),
            ("n", Json::int(3)),
            ("ok", Json::Bool(true)),
            ("amount", Json::amount(Amount::from_sat(5_000_000_000))),
            ("progress", Json::Float(1.0)),
            ("difficulty", Json::Float(4.656542373906925e-10)),
            ("big", Json::Float(-2.5e20)),
            ("nan", Json::Float(f64::NAN)),
            (
                "list",
                Json::Array(vec![
                    Json::str("a"),
                    Json::Object(vec![("x", Json::int(-1))]),
                ]),
            ),
            ("empty", Json::Array(vec![])),
            ("ctl", Json::str("\u{1}")),
        ]);
        let want = r#"{
  "name": "w\"1\"\n",
  "n": 3,
  "ok": true,
  "amount": 50.00000000,
  "progress": 1,
  "difficulty": 4.656542373906925e-10,
  "big": -2.5e20,
  "nan": null,
  "list": [
    "a",
    {
      "x": -1
    }
  ],
  "empty": [
  ],
  "ctl": "\u0001"
}"#;
        assert_eq!(v.to_string(), want);
    }
}
