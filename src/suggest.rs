//! "Did you mean" suggestions for a name looked up in a closed list (formats, rounding modes,
//! algorithms, hyperparameters, JSON fields, ...): the allowed name nearest to the one given by
//! Levenshtein distance ([`strsim::levenshtein`]), when it is close enough to be a plausible typo.
//! Every lookup of a name goes through this one helper so that every error offers the same hint.

/// The allowed name nearest to `given` (compared without regard to ASCII case), if the edit
/// distance is at most half its length (and at least 2 edits are always tolerated): `e4m3` finds
/// `e4m3fn`, `colls` finds `cols`, and `zzzzzzzz` finds nothing.
pub(crate) fn nearest<S: AsRef<str>>(
    given: &str,
    allowed: impl IntoIterator<Item = S>,
) -> Option<String> {
    let given = given.trim().to_ascii_lowercase();
    allowed
        .into_iter()
        .map(|a| {
            let a = a.as_ref();
            (
                strsim::levenshtein(&given, &a.to_ascii_lowercase()),
                a.to_string(),
            )
        })
        .min()
        .filter(|(d, a)| *d >= 1 && *d <= (a.len() / 2).max(2))
        .map(|(_, a)| a)
}

/// `"; did you mean `x`?"` for the nearest allowed name (see [`nearest`]), or nothing.
pub(crate) fn suggestion<S: AsRef<str>>(
    given: &str,
    allowed: impl IntoIterator<Item = S>,
) -> String {
    nearest(given, allowed)
        .map(|a| format!("; did you mean `{a}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names() {
        assert_eq!(
            nearest("colls", ["rows", "cols", "dataflow"]),
            Some("cols".into())
        );
        assert_eq!(
            nearest("e4m3", ["e5m2", "e4m3fn", "bf16"]),
            Some("e4m3fn".into())
        );
        assert_eq!(
            nearest("LP-SGLD", ["lp-sgld-f", "sgld"]),
            Some("lp-sgld-f".into())
        );
        assert_eq!(nearest("zzzzzzzz", ["rows", "cols"]), None);
        // An exact match is not a typo: nothing to suggest.
        assert_eq!(nearest("rows", ["rows"]), None);
        assert_eq!(suggestion("rowz", ["rows"]), "; did you mean `rows`?");
        assert_eq!(suggestion("zzzzzzzz", ["rows"]), "");
    }
}
