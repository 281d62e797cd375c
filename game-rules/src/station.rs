//! Station codes: the six-digit code a canteen line or waste-sorting point shows, rotating every
//! window (a minute by default), like an authenticator app.
//!
//! The code is TOTP (RFC 6238) with HMAC-SHA256: the HMAC of the station secret over the window
//! index (`unix_seconds / window_secs`, 8 bytes big-endian), dynamically truncated as in RFC 4226
//! §5.3, modulo 10^6. A code is accepted in its own window and the next one, so a code read at the
//! end of a minute still works; nothing older and nothing from the future. That a code is used
//! once per student and station is recorded by the server, keyed by the [`WindowIndex`] that
//! [`verify`] returns.

use std::fmt;
use std::num::NonZeroU32;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

/// The default rotation period: 60 seconds.
pub const DEFAULT_WINDOW_SECS: NonZeroU32 = NonZeroU32::new(60).unwrap();

/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// The shortest accepted secret, in bytes (128 bits). The server should generate 32 random bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// A station's secret key. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct StationSecret(Vec<u8>);

impl StationSecret {
    /// Wraps a secret of at least [`MIN_SECRET_BYTES`] bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, StationCodeError> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(StationCodeError::SecretTooShort);
        }
        Ok(Self(bytes))
    }

    /// The key bytes, for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for StationSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StationSecret(..)")
    }
}

/// The number of a code window since the Unix epoch: `unix_seconds / window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowIndex(pub u64);

impl WindowIndex {
    /// The window containing `at`. Instants before 1970 fall in window 0.
    pub fn containing(at: OffsetDateTime, window_secs: NonZeroU32) -> Self {
        let secs = u64::try_from(at.unix_timestamp()).unwrap_or(0);
        Self(secs / u64::from(window_secs.get()))
    }
}

/// A six-digit station code. Displays with its leading zeros (`084774`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StationCode(u32);

impl StationCode {
    /// Parses exactly six ASCII digits; no sign, no spaces, leading zeros kept.
    pub fn parse(s: &str) -> Result<Self, StationCodeError> {
        if s.len() != CODE_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StationCodeError::Malformed);
        }
        s.parse().map(Self).map_err(|_| StationCodeError::Malformed)
    }

    /// The code as a number below 10^6.
    pub fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for StationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// Why a station code is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StationCodeError {
    /// Not exactly six ASCII digits.
    #[error("a station code is exactly 6 digits")]
    Malformed,
    /// Wrong, expired or not yet valid. One variant for all three, so a guesser learns nothing.
    #[error("the station code is wrong or has expired")]
    Incorrect,
    /// A secret shorter than [`MIN_SECRET_BYTES`].
    #[error("a station secret must be at least {MIN_SECRET_BYTES} bytes")]
    SecretTooShort,
}

/// The code of window `window` (HOTP with the window index as the counter).
pub fn code_for_window(secret: &StationSecret, window: WindowIndex) -> StationCode {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret.0)
        .expect("HMAC accepts keys of any length");
    mac.update(&window.0.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // RFC 4226 §5.3: the low nibble of the last byte picks four bytes; drop the top bit.
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let bytes = [
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ];
    StationCode(u32::from_be_bytes(bytes) % 1_000_000)
}

/// The code a station shows at `at`.
pub fn code_at(secret: &StationSecret, at: OffsetDateTime, window_secs: NonZeroU32) -> StationCode {
    code_for_window(secret, WindowIndex::containing(at, window_secs))
}

/// Checks a code typed by a student at `now`: it must be the code of the current window or of the
/// previous one. Returns the window it belongs to, which the server records as used for this
/// student and station.
pub fn verify(
    secret: &StationSecret,
    code: &str,
    now: OffsetDateTime,
    window_secs: NonZeroU32,
) -> Result<WindowIndex, StationCodeError> {
    let code = StationCode::parse(code)?;
    let current = WindowIndex::containing(now, window_secs);
    let previous = current.0.checked_sub(1).map(WindowIndex);
    [Some(current), previous]
        .into_iter()
        .flatten()
        .find(|&window| code_for_window(secret, window) == code)
        .ok_or(StationCodeError::Incorrect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    /// The SHA-256 seed of RFC 6238 Appendix B.
    fn rfc_secret() -> StationSecret {
        StationSecret::new(b"12345678901234567890123456789012".to_vec()).unwrap()
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    const THIRTY: NonZeroU32 = NonZeroU32::new(30).unwrap();

    #[test]
    fn codes_match_the_rfc_6238_sha256_vectors_cut_to_six_digits() {
        // Appendix B's 8-digit values modulo 10^6 (the same truncated integer, fewer digits).
        for (unix, eight_digits) in [
            (59, "46119246"),
            (1_111_111_109, "68084774"),
            (1_111_111_111, "67062674"),
            (1_234_567_890, "91819424"),
            (2_000_000_000, "90698825"),
            (20_000_000_000, "77737706"),
        ] {
            let code = code_at(&rfc_secret(), at(unix), THIRTY);
            assert_eq!(code.to_string(), eight_digits[2..], "at {unix}");
        }
    }

    #[test]
    fn a_code_keeps_its_leading_zero() {
        let code = code_at(&rfc_secret(), at(1_111_111_109), THIRTY);
        assert_eq!(code.to_string(), "084774");
        assert_eq!(code.value(), 84_774);
    }

    #[test]
    fn the_current_code_verifies_to_the_current_window() {
        let secret = rfc_secret();
        let now = at(1_740_000_000);
        let code = code_at(&secret, now, DEFAULT_WINDOW_SECS).to_string();
        assert_eq!(
            verify(&secret, &code, now, DEFAULT_WINDOW_SECS),
            Ok(WindowIndex(29_000_000))
        );
    }

    #[test]
    fn the_previous_windows_code_is_still_accepted() {
        let secret = rfc_secret();
        let shown = at(1_740_000_059);
        let code = code_at(&secret, shown, DEFAULT_WINDOW_SECS).to_string();
        let now = shown + Duration::seconds(2);
        assert_eq!(
            verify(&secret, &code, now, DEFAULT_WINDOW_SECS),
            Ok(WindowIndex(29_000_000))
        );
    }

    #[test]
    fn a_code_two_windows_old_has_expired() {
        let secret = rfc_secret();
        let shown = at(1_740_000_000);
        let code = code_at(&secret, shown, DEFAULT_WINDOW_SECS).to_string();
        let now = shown + Duration::seconds(120);
        assert_eq!(
            verify(&secret, &code, now, DEFAULT_WINDOW_SECS),
            Err(StationCodeError::Incorrect)
        );
    }

    #[test]
    fn the_next_windows_code_is_refused() {
        let secret = rfc_secret();
        let now = at(1_740_000_000);
        let future = code_at(&secret, now + Duration::seconds(60), DEFAULT_WINDOW_SECS);
        assert_ne!(future, code_at(&secret, now, DEFAULT_WINDOW_SECS));
        assert_eq!(
            verify(&secret, &future.to_string(), now, DEFAULT_WINDOW_SECS),
            Err(StationCodeError::Incorrect)
        );
    }

    #[test]
    fn a_wrong_code_is_refused() {
        let secret = rfc_secret();
        let now = at(1_740_000_000);
        let right = code_at(&secret, now, DEFAULT_WINDOW_SECS).value();
        let previous = code_for_window(&secret, WindowIndex(28_999_999)).value();
        let wrong = (0..1_000_000)
            .find(|c| *c != right && *c != previous)
            .unwrap();
        assert_eq!(
            verify(&secret, &format!("{wrong:06}"), now, DEFAULT_WINDOW_SECS),
            Err(StationCodeError::Incorrect)
        );
    }

    #[test]
    fn another_stations_code_is_refused() {
        let now = at(1_740_000_000);
        let other = StationSecret::new(b"carbon-league-station-secret-0001".to_vec()).unwrap();
        // Independently computed: HMAC-SHA256 TOTP of `other` at window 29_000_000 is 627031.
        assert_eq!(
            code_at(&other, now, DEFAULT_WINDOW_SECS).to_string(),
            "627031"
        );
        assert_eq!(
            verify(&rfc_secret(), "627031", now, DEFAULT_WINDOW_SECS),
            Err(StationCodeError::Incorrect)
        );
    }

    #[test]
    fn codes_are_parsed_strictly() {
        assert_eq!(StationCode::parse("012345").unwrap().value(), 12_345);
        for bad in [
            "12345",
            "1234567",
            "+12345",
            " 12345",
            "12345 ",
            "12a456",
            "１２３４５６",
            "",
        ] {
            assert_eq!(
                StationCode::parse(bad),
                Err(StationCodeError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_short_secret_is_refused_and_secrets_never_print() {
        assert_eq!(
            StationSecret::new(vec![0; 15]),
            Err(StationCodeError::SecretTooShort)
        );
        assert_eq!(format!("{:?}", rfc_secret()), "StationSecret(..)");
    }
}
