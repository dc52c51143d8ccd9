//! HALP's offset codes on a layered model: their format, rounding unit and the code value the
//! offset bound maps to.

use crate::algo::svrg::code_rounding;
use crate::algo::{AlgoError, Hyper};
use crate::arch::Architecture;
use crate::format::{FixedFormat, Format};
use crate::graph::fits_within;
use crate::round::Rounding;

/// Whether every value of `format` is exact as the MAC's B operand, so codes can be multiplied
/// without a conversion (`fits_within`: exact value-set inclusion, `format::contains`).
fn exact_on_mac(format: &Format, arch: &Architecture) -> bool {
    fits_within(format, &arch.formats.mac.b)
}

/// HALP's offset codes: their format and rounding, and the code value `levels` that the offset
/// bound `||g~_l|| / mu` maps to (`delta_l = ||g~_l|| / (mu levels)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Codes {
    pub(super) format: Format,
    pub(super) rounding: Rounding,
    pub(super) levels: f64,
}

/// The offset codes on `arch` (stochastic rounding: the weights' unit if it is stochastic, else
/// `sr`). `bits = b > 0`: the paper's `b`-bit integers (`levels = 2^(b-1) - 1`), refused unless
/// the MAC takes them exactly. `bits = 0`: integers as wide as the weight format (at most 24
/// bits), as on linear models, where the MAC takes them exactly; otherwise the weight format
/// itself, as the authors keep the offset in the datapath's own fp16 (`levels`: the format's
/// largest value for fixed point; 1 for floats and block formats, whose exponent resolves the
/// smaller offsets).
pub(super) fn offset_codes(arch: &Architecture, hyper: &Hyper) -> Result<Codes, AlgoError> {
    let bits = hyper.count("bits", 0)? as u32;
    let b = match bits {
        0 => arch.formats.weights.bits().min(24),
        b => b,
    };
    let fixed =
        FixedFormat::new(b, 0, true, true, false).map_err(|reason| AlgoError::BadHyper {
            name: "bits".into(),
            reason: format!("{b}: {reason}"),
        })?;
    let rounding = code_rounding(arch);
    let levels = |f: &FixedFormat| f.max_value().max(f.step());
    if exact_on_mac(&Format::Fixed(fixed), arch) {
        return Ok(Codes {
            format: Format::Fixed(fixed),
            rounding,
            levels: levels(&fixed),
        });
    }
    let weights = arch.formats.weights;
    if bits > 0 || !exact_on_mac(&weights, arch) {
        let ints = Format::Fixed(fixed);
        let tried = if bits > 0 {
            format!("`{ints}`")
        } else {
            format!("`{ints}` and the weight format `{weights}`")
        };
        return Err(AlgoError::Unsupported(format!(
            "`halp`: the offset codes ({tried}) are not values of the MAC's b format `{}`; \
             use `bits` = 0 (the weight format) or an architecture whose MAC takes them",
            arch.formats.mac.b
        )));
    }
    Ok(Codes {
        format: weights,
        rounding,
        levels: match weights {
            Format::Fixed(f) => levels(&f),
            _ => 1.0,
        },
    })
}
