//! Format spec strings: the aliases of the field (`bf16`, `e4m3fn`, `mxfp8`, ...) and the
//! generic `kind:key=value,...` forms. Every error names the part that is wrong and what is
//! allowed. `Display` on [`Format`] writes a spec that parses back to the same format.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use thiserror::Error;

use crate::format::{
    BlockFormat, BlockKind, BlockSize, Element, FixedFormat, FloatFormat, Format, QTorchFixed,
    QTorchFloat, Special,
};
use crate::suggest::suggestion;

/// A malformed format spec.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
#[error("format `{spec}`: {reason}")]
pub struct FormatError {
    /// The text that was given.
    pub spec: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// Every alias, in the order `lpsim formats` lists them.
pub const ALIASES: &[&str] = &[
    "fp64",
    "fp32",
    "tf32",
    "bf16",
    "fp16",
    "e5m2",
    "e4m3fn",
    "e4m3fnuz",
    "e5m2fnuz",
    "e3m2fn",
    "e2m3fn",
    "e2m1fn",
    "e8m0fnu",
    "int4",
    "int8",
    "int16",
    "int32",
    "uint8",
    "mxfp8",
    "mxfp8_e5m2",
    "mxfp6",
    "mxfp6_e2m3",
    "mxfp4",
    "mxint8",
];

const KINDS: &str =
    "an alias (see `lpsim formats`) or float:, fixed:, bfp:, mx:, qtorch:, qfixed:, qbfp:";

/// The `kind` of a `kind:key=value,...` spec.
const FORMAT_KINDS: [&str; 7] = ["float", "fixed", "bfp", "mx", "qtorch", "qfixed", "qbfp"];

fn float(e: u32, m: u32, bias: Option<i32>, special: Special) -> FloatFormat {
    FloatFormat::new(e, m, bias, true, special, false, true, true)
        .expect("alias parameters are valid")
}

fn int(wl: u32, signed: bool) -> FixedFormat {
    FixedFormat::new(wl, 0, signed, false, false).expect("alias parameters are valid")
}

fn mx(element: Element) -> BlockFormat {
    BlockFormat::mx(element, BlockSize::Elements(32)).expect("alias parameters are valid")
}

/// The format an alias names, or `None`.
pub fn alias(name: &str) -> Option<Format> {
    Some(match name {
        "fp64" => Format::Float(float(11, 52, None, Special::Ieee)),
        "fp32" => Format::Float(float(8, 23, None, Special::Ieee)),
        "tf32" => Format::Float(float(8, 10, None, Special::Ieee)),
        "bf16" => Format::Float(float(8, 7, None, Special::Ieee)),
        "fp16" => Format::Float(float(5, 10, None, Special::Ieee)),
        "e5m2" => Format::Float(float(5, 2, None, Special::Ieee)),
        "e4m3fn" => Format::Float(float(4, 3, None, Special::Fn)),
        "e4m3fnuz" => Format::Float(float(4, 3, Some(8), Special::Fnuz)),
        "e5m2fnuz" => Format::Float(float(5, 2, Some(16), Special::Fnuz)),
        "e3m2fn" => Format::Float(float(3, 2, None, Special::None)),
        "e2m3fn" => Format::Float(float(2, 3, None, Special::None)),
        "e2m1fn" => Format::Float(float(2, 1, None, Special::None)),
        "e8m0fnu" => Format::Float(
            FloatFormat::new(8, 0, None, false, Special::Fn, false, false, false).expect("valid"),
        ),
        "int4" => Format::Fixed(int(4, true)),
        "int8" => Format::Fixed(int(8, true)),
        "int16" => Format::Fixed(int(16, true)),
        "int32" => Format::Fixed(int(32, true)),
        "uint8" => Format::Fixed(int(8, false)),
        "mxfp8" => Format::Block(mx(Element::Float(float(4, 3, None, Special::Fn)))),
        "mxfp8_e5m2" => Format::Block(mx(Element::Float(float(5, 2, None, Special::Ieee)))),
        "mxfp6" => Format::Block(mx(Element::Float(float(3, 2, None, Special::None)))),
        "mxfp6_e2m3" => Format::Block(mx(Element::Float(float(2, 3, None, Special::None)))),
        "mxfp4" => Format::Block(mx(Element::Float(float(2, 1, None, Special::None)))),
        "mxint8" => Format::Block(mx(Element::Fixed(
            FixedFormat::new(8, 6, true, true, true).expect("valid"),
        ))),
        _ => return None,
    })
}

/// Parsed `key=value` pairs that reports unknown or missing keys.
struct Fields<'a> {
    spec: &'a str,
    map: BTreeMap<&'a str, &'a str>,
}

impl<'a> Fields<'a> {
    fn err(&self, reason: impl Into<String>) -> FormatError {
        FormatError {
            spec: self.spec.to_string(),
            reason: reason.into(),
        }
    }

    fn parse(spec: &'a str, body: &'a str, allowed: &[&str]) -> Result<Self, FormatError> {
        let mut map = BTreeMap::new();
        let f = Fields {
            spec,
            map: BTreeMap::new(),
        };
        for part in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| f.err(format!("`{part}` is not `key=value`")))?;
            let k = k.trim();
            if !allowed.contains(&k) {
                return Err(f.err(format!(
                    "unknown key `{k}`{}; allowed keys: {}",
                    suggestion(k, allowed),
                    allowed.join(", ")
                )));
            }
            if map.insert(k, v.trim()).is_some() {
                return Err(f.err(format!("key `{k}` is given twice")));
            }
        }
        Ok(Fields { spec, map })
    }

    fn int<T: std::str::FromStr>(&self, key: &str, range: &str) -> Result<Option<T>, FormatError> {
        self.map
            .get(key)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| self.err(format!("{key} = `{v}`: must be an integer {range}")))
            })
            .transpose()
    }

    fn required<T: std::str::FromStr>(&self, key: &str, range: &str) -> Result<T, FormatError> {
        self.int(key, range)?
            .ok_or_else(|| self.err(format!("missing `{key}=` ({range})")))
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, FormatError> {
        match self.map.get(key) {
            None => Ok(default),
            Some(&"on") | Some(&"true") | Some(&"1") => Ok(true),
            Some(&"off") | Some(&"false") | Some(&"0") => Ok(false),
            Some(v) => Err(self.err(format!("{key} = `{v}`: must be on or off"))),
        }
    }

    fn size(&self) -> Result<BlockSize, FormatError> {
        match self.map.get("size") {
            None => Ok(BlockSize::Elements(32)),
            Some(&"row") => Ok(BlockSize::Row),
            Some(&"col") => Ok(BlockSize::Col),
            Some(&"tensor") => Ok(BlockSize::Tensor),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .map(BlockSize::Elements)
                .ok_or_else(|| {
                    self.err(format!(
                        "size = `{v}`: must be a count >= 1, `row`, `col` or `tensor`"
                    ))
                }),
        }
    }
}

/// Parse a format spec (see the module docs).
pub fn parse(spec: &str) -> Result<Format, FormatError> {
    let text = spec.trim();
    let lower = text.to_ascii_lowercase();
    if let Some(f) = alias(&lower) {
        return Ok(f);
    }
    let err = |reason: String| FormatError {
        spec: spec.to_string(),
        reason,
    };
    let (kind, body) = lower.split_once(':').ok_or_else(|| {
        err(format!(
            "unknown format{}; expected {KINDS}",
            suggestion(&lower, ALIASES)
        ))
    })?;
    let wrap = |r: Result<Format, String>| r.map_err(&err);
    match kind.trim() {
        "float" => {
            let f = Fields::parse(
                spec,
                body,
                &["e", "m", "bias", "sub", "special", "sat", "signed", "zero"],
            )?;
            let special = match f.map.get("special").copied().unwrap_or("ieee") {
                "ieee" => Special::Ieee,
                "fn" => Special::Fn,
                "fnuz" => Special::Fnuz,
                "none" => Special::None,
                other => {
                    return Err(f.err(format!(
                        "special = `{other}`: must be ieee, fn, fnuz or none{}",
                        suggestion(other, ["ieee", "fn", "fnuz", "none"])
                    )))
                }
            };
            wrap(
                FloatFormat::new(
                    f.required("e", "1..=11")?,
                    f.required("m", "0..=52")?,
                    f.int("bias", "(default 2^(e-1)-1)")?,
                    f.flag("sub", true)?,
                    special,
                    f.flag("sat", false)?,
                    f.flag("signed", true)?,
                    f.flag("zero", true)?,
                )
                .map(Format::Float),
            )
        }
        "fixed" => {
            // QPyTorch's `clamp=False` has a format of its own: say where.
            let mut keys = body.split(',').filter_map(|p| p.split_once('='));
            if keys.any(|(k, _)| k.trim() == "clamp") {
                return Err(err(
                    "`clamp` is QPyTorch's: its fixed_point_quantize is \
                     `qfixed:wl=,fl=,clamp=on|off`; `fixed:` saturates or wraps (`sat=on|off`)"
                        .into(),
                ));
            }
            let f = Fields::parse(spec, body, &["wl", "fl", "signed", "sat", "symmetric"])?;
            wrap(
                FixedFormat::new(
                    f.required("wl", "1..=64")?,
                    f.required("fl", "of any sign")?,
                    f.flag("signed", true)?,
                    f.flag("sat", true)?,
                    f.flag("symmetric", false)?,
                )
                .map(Format::Fixed),
            )
        }
        "bfp" => {
            let f = Fields::parse(spec, body, &["wl", "size"])?;
            wrap(BlockFormat::bfp(f.required("wl", "2..=32")?, f.size()?).map(Format::Block))
        }
        "qbfp" => {
            let f = Fields::parse(spec, body, &["wl", "size"])?;
            wrap(BlockFormat::qbfp(f.required("wl", "2..=22")?, f.size()?).map(Format::Block))
        }
        "mx" => {
            let f = Fields::parse(spec, body, &["elem", "size"])?;
            let name = f.map.get("elem").copied().unwrap_or("e4m3fn");
            let element =
                match alias(name) {
                    Some(Format::Float(x)) if x.bits() <= 8 && x.signed() => Element::Float(x),
                    _ if name == "int8" => {
                        Element::Fixed(FixedFormat::new(8, 6, true, true, true).map_err(&err)?)
                    }
                    _ => {
                        return Err(f.err(format!(
                        "elem = `{name}`: must be e4m3fn, e5m2, e3m2fn, e2m3fn, e2m1fn or int8{}",
                        suggestion(name, ["e4m3fn", "e5m2", "e3m2fn", "e2m3fn", "e2m1fn", "int8"])
                    )))
                    }
                };
            wrap(BlockFormat::mx(element, f.size()?).map(Format::Block))
        }
        "qtorch" => {
            let f = Fields::parse(spec, body, &["e", "m"])?;
            wrap(
                QTorchFloat::new(f.required("e", "2..=8")?, f.required("m", "0..=22")?)
                    .map(Format::QTorch),
            )
        }
        "qfixed" => {
            let f = Fields::parse(spec, body, &["wl", "fl", "clamp", "symmetric"])?;
            wrap(
                QTorchFixed::new(
                    f.required("wl", "1..=64")?,
                    f.required("fl", "of any sign")?,
                    f.flag("clamp", true)?,
                    f.flag("symmetric", false)?,
                )
                .map(Format::QFixed),
            )
        }
        other => Err(err(format!(
            "unknown kind `{other}`{}; expected {KINDS}",
            suggestion(other, FORMAT_KINDS)
        ))),
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Every alias with the format it names, built once: a format's canonical spec is written for
/// every key of counts written as JSON and every priced action's override lookup, so the lookup
/// must not rebuild the formats.
fn alias_table() -> &'static [(&'static str, Format)] {
    static TABLE: OnceLock<Vec<(&'static str, Format)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ALIASES
            .iter()
            .filter_map(|&name| Some((name, alias(name)?)))
            .collect()
    })
}

impl fmt::Display for Format {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((name, _)) = alias_table().iter().find(|(_, f)| f == self) {
            return out.write_str(name);
        }
        match self {
            Format::Float(f) => {
                write!(out, "float:e={},m={}", f.exp_bits(), f.man_bits())?;
                if f.bias() != (1 << (f.exp_bits() - 1)) - 1 {
                    write!(out, ",bias={}", f.bias())?;
                }
                if !f.subnormals() && f.has_zero() {
                    out.write_str(",sub=off")?;
                }
                if f.special() != Special::Ieee {
                    write!(out, ",special={}", f.special().name())?;
                }
                if f.saturate() {
                    out.write_str(",sat=on")?;
                }
                if !f.signed() {
                    out.write_str(",signed=off")?;
                }
                if !f.has_zero() {
                    out.write_str(",zero=off")?;
                }
                Ok(())
            }
            Format::Fixed(f) => {
                write!(out, "fixed:wl={},fl={}", f.wl(), f.fl())?;
                if !f.signed() {
                    out.write_str(",signed=off")?;
                }
                if !f.saturate() {
                    write!(out, ",sat={}", on_off(f.saturate()))?;
                }
                if f.symmetric() {
                    out.write_str(",symmetric=on")?;
                }
                Ok(())
            }
            Format::Block(b) => match (b.kind(), b.element()) {
                (BlockKind::Bfp, Element::Fixed(e)) => {
                    write!(out, "bfp:wl={},size={}", e.wl(), b.size())
                }
                (BlockKind::QBfp, Element::Fixed(e)) => {
                    write!(out, "qbfp:wl={},size={}", e.wl(), b.size())
                }
                (_, element) => {
                    let name = match element {
                        Element::Float(f) => Format::Float(
                            FloatFormat::new(
                                f.exp_bits(),
                                f.man_bits(),
                                Some(f.bias()),
                                f.subnormals(),
                                f.special(),
                                false,
                                f.signed(),
                                f.has_zero(),
                            )
                            .map_err(|_| fmt::Error)?,
                        )
                        .to_string(),
                        Element::Fixed(_) => "int8".into(),
                    };
                    write!(out, "mx:elem={name},size={}", b.size())
                }
            },
            Format::QTorch(q) => write!(out, "qtorch:e={},m={}", q.exp_bits(), q.man_bits()),
            Format::QFixed(q) => {
                write!(out, "qfixed:wl={},fl={}", q.wl(), q.fl())?;
                if !q.clamp() {
                    out.write_str(",clamp=off")?;
                }
                if q.symmetric() {
                    out.write_str(",symmetric=on")?;
                }
                Ok(())
            }
        }
    }
}
