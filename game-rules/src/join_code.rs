//! Class join codes: short, easy to read aloud, never ambiguous.
//!
//! A join code is six characters from an alphabet without `0`, `O`, `1`, `I` and `L`, so a
//! teacher can read it to a class and nobody mistakes one character for another. Parsing is
//! forgiving about what people type (lower case, spaces, dashes) and strict about the result.

use std::fmt;

/// The characters a join code is made of: digits and capital letters minus 0, O, 1, I and L.
pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// How many characters a join code has. 31^6 ≈ 887 million codes.
pub const LEN: usize = 6;

/// A valid, normalised join code (upper case, no separators).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinCode(String);

/// Why a typed join code is not a join code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinCodeError {
    /// The code has the wrong number of characters once spaces and dashes are removed.
    #[error("a join code has {LEN} characters")]
    WrongLength,
    /// The code holds a character that no join code contains.
    #[error("a join code holds only letters and digits without 0, O, 1, I and L")]
    BadCharacter,
}

impl JoinCode {
    /// Builds a code from random bytes (one byte per character), so the caller chooses the
    /// randomness source. Rejection-free: each byte picks `byte % 31`; the slight bias towards
    /// the first characters (256 = 8×31 + 8) does not matter for a code that is rate-limited.
    pub fn from_random_bytes(bytes: [u8; LEN]) -> Self {
        let code = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect();
        Self(code)
    }

    /// Parses what a person typed: case-insensitive, spaces and dashes ignored.
    pub fn parse(input: &str) -> Result<Self, JoinCodeError> {
        let cleaned: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if cleaned.chars().count() != LEN {
            return Err(JoinCodeError::WrongLength);
        }
        if !cleaned.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(JoinCodeError::BadCharacter);
        }
        Ok(Self(cleaned))
    }

    /// The normalised code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_alphabet_has_no_ambiguous_characters() {
        for c in b"0O1IL" {
            assert!(!ALPHABET.contains(c), "{} is ambiguous", char::from(*c));
        }
        let mut sorted = ALPHABET.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), ALPHABET.len());
    }

    #[test]
    fn a_typed_code_is_normalised_to_upper_case_without_separators() {
        assert_eq!(JoinCode::parse("ab3-d 7k").unwrap().as_str(), "AB3D7K");
    }

    #[test]
    fn a_code_with_an_ambiguous_character_is_refused() {
        assert_eq!(JoinCode::parse("AB0D7K"), Err(JoinCodeError::BadCharacter));
        assert_eq!(JoinCode::parse("ABLD7K"), Err(JoinCodeError::BadCharacter));
    }

    #[test]
    fn a_code_of_the_wrong_length_is_refused() {
        assert_eq!(JoinCode::parse("AB3D7"), Err(JoinCodeError::WrongLength));
        assert_eq!(JoinCode::parse("AB3D7KK"), Err(JoinCodeError::WrongLength));
        assert_eq!(JoinCode::parse(""), Err(JoinCodeError::WrongLength));
    }

    proptest! {
        #[test]
        fn every_generated_code_parses_back_to_itself(bytes in any::<[u8; LEN]>()) {
            let code = JoinCode::from_random_bytes(bytes);
            prop_assert_eq!(JoinCode::parse(code.as_str()), Ok(code.clone()));
            prop_assert_eq!(JoinCode::parse(&code.as_str().to_lowercase()), Ok(code));
        }

        #[test]
        fn parsing_never_panics(input in ".{0,20}") {
            let _ = JoinCode::parse(&input);
        }
    }
}
