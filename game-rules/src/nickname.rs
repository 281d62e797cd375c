//! Student nicknames: the only name a student has inside Carbon League.
//!
//! Minors are known by a nickname inside their class — never a real name or a phone number.
//! A nickname is 1 to [`MAX_CHARS`] characters after trimming: letters of any script (Chinese
//! characters included), digits, and single spaces, `_`, `-` or `.` between them. Nicknames are
//! unique within a class, compared case-insensitively through [`Nickname::key`].

use std::fmt;

/// The longest nickname, in characters (not bytes).
pub const MAX_CHARS: usize = 20;

/// A valid nickname, trimmed, with inner runs of white space folded to one space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nickname(String);

/// Why a nickname was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NicknameError {
    /// Nothing but white space.
    #[error("a nickname cannot be empty")]
    Empty,
    /// Longer than [`MAX_CHARS`] characters.
    #[error("a nickname has at most {MAX_CHARS} characters")]
    TooLong,
    /// A character outside letters, digits, space, `_`, `-` and `.`.
    #[error("a nickname holds only letters, digits, spaces, '_', '-' and '.'")]
    BadCharacter,
    /// Punctuation only, with no letter or digit.
    #[error("a nickname needs at least one letter or digit")]
    NoLetterOrDigit,
}

impl Nickname {
    /// Parses and normalises a nickname.
    pub fn parse(input: &str) -> Result<Self, NicknameError> {
        let folded = input.split_whitespace().collect::<Vec<_>>().join(" ");
        if folded.is_empty() {
            return Err(NicknameError::Empty);
        }
        if folded.chars().count() > MAX_CHARS {
            return Err(NicknameError::TooLong);
        }
        if !folded
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.'))
        {
            return Err(NicknameError::BadCharacter);
        }
        if !folded.chars().any(char::is_alphanumeric) {
            return Err(NicknameError::NoLetterOrDigit);
        }
        Ok(Self(folded))
    }

    /// The nickname as shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which nicknames clash: "Xiao Ming" and "xiao ming" are the same student.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Nickname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chinese_characters_make_a_valid_nickname() {
        assert_eq!(Nickname::parse("小明").unwrap().as_str(), "小明");
        assert_eq!(
            Nickname::parse("绿色 小队_2").unwrap().as_str(),
            "绿色 小队_2"
        );
    }

    #[test]
    fn white_space_is_trimmed_and_folded() {
        assert_eq!(
            Nickname::parse("  Xiao   Ming ").unwrap().as_str(),
            "Xiao Ming"
        );
    }

    #[test]
    fn nicknames_differing_only_in_case_share_a_key() {
        let a = Nickname::parse("Xiao Ming").unwrap();
        let b = Nickname::parse("xiao ming").unwrap();
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn empty_long_and_strange_nicknames_are_refused() {
        assert_eq!(Nickname::parse("   "), Err(NicknameError::Empty));
        assert_eq!(
            Nickname::parse(&"字".repeat(21)),
            Err(NicknameError::TooLong)
        );
        assert!(Nickname::parse(&"字".repeat(20)).is_ok());
        assert_eq!(Nickname::parse("a<b>"), Err(NicknameError::BadCharacter));
        assert_eq!(Nickname::parse("138@x"), Err(NicknameError::BadCharacter));
        assert_eq!(Nickname::parse("._-"), Err(NicknameError::NoLetterOrDigit));
        assert_eq!(Nickname::parse("a\u{0}b"), Err(NicknameError::BadCharacter));
    }

    proptest! {
        #[test]
        fn a_parsed_nickname_parses_again_to_itself(input in "\\PC{0,30}") {
            if let Ok(n) = Nickname::parse(&input) {
                prop_assert_eq!(Nickname::parse(n.as_str()), Ok(n.clone()));
                prop_assert!(n.as_str().chars().count() <= MAX_CHARS);
            }
        }
    }
}
