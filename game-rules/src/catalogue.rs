//! The behaviour catalogue: which low-carbon behaviours score, in which unit, with which emission
//! factor (and its published source), for how many points, how much per day, and how they may be
//! verified.
//!
//! The catalogue is data (`config/behaviors.toml`); this module owns its types and the validation
//! that turns the file into a [`Catalogue`], or into a [`CatalogueError`] naming the bad entry and
//! field. Emission factors are integers, milligrams of CO2e per unit, so every total is exact.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

/// The longest behaviour id, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// A behaviour's stable identifier: snake_case ASCII (`meatless_meal`), stored with every
/// submission.
// Not `serde(transparent)`: the same wire shape (a plain string), but deserialising validates.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct BehaviorId(String);

/// A string that is not a valid [`BehaviorId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "behaviour id `{0}` must be 1 to {MAX_ID_LEN} bytes of snake_case: a-z, 0-9 and single \
     underscores, starting with a letter"
)]
pub struct InvalidBehaviorId(pub String);

impl BehaviorId {
    /// Parses a snake_case id: a letter first, then `a-z`, `0-9` and single underscores, no
    /// trailing underscore, at most [`MAX_ID_LEN`] bytes.
    pub fn parse(s: &str) -> Result<Self, InvalidBehaviorId> {
        let bytes = s.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= MAX_ID_LEN
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
            && !s.contains("__")
            && !s.ends_with('_');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidBehaviorId(s.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BehaviorId {
    type Error = InvalidBehaviorId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<BehaviorId> for String {
    fn from(id: BehaviorId) -> Self {
        id.0
    }
}

impl Borrow<str> for BehaviorId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BehaviorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The unit a behaviour's quantity is counted in. Quantities are whole units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// One meal.
    Meal,
    /// One kilogram (weighed waste).
    Kg,
    /// One item (a bottle, a cup).
    Item,
    /// One kilometre travelled, one way.
    Km,
    /// One kilowatt-hour of electricity.
    Kwh,
    /// One sheet of paper.
    Sheet,
    /// One cubic metre (of water).
    M3,
}

impl Unit {
    /// Every unit, in declaration order.
    pub const ALL: [Unit; 7] = [
        Self::Meal,
        Self::Kg,
        Self::Item,
        Self::Km,
        Self::Kwh,
        Self::Sheet,
        Self::M3,
    ];

    /// The name used in the catalogue and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meal => "meal",
            Self::Kg => "kg",
            Self::Item => "item",
            Self::Km => "km",
            Self::Kwh => "kwh",
            Self::Sheet => "sheet",
            Self::M3 => "m3",
        }
    }

    /// Parses a unit name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

/// A way a behaviour may be verified. A teacher may always verify (approve or enter) any behaviour,
/// whether or not the catalogue lists [`VerificationMethod::Teacher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMethod {
    /// A teacher approves it (or enters it directly).
    Teacher,
    /// Classmates confirm it.
    Peer,
    /// It is submitted with a station's current code.
    Station,
}

impl VerificationMethod {
    /// Every method, in declaration order.
    pub const ALL: [VerificationMethod; 3] = [Self::Teacher, Self::Peer, Self::Station];

    /// The name used in the catalogue and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Teacher => "teacher",
            Self::Peer => "peer",
            Self::Station => "station",
        }
    }

    /// Parses a method name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for VerificationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One behaviour of the catalogue. Values taken from a [`Catalogue`] are validated: every number
/// is positive and `max_quantity_per_submission <= daily_cap_per_student`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Behavior {
    /// Stable identifier.
    pub id: BehaviorId,
    /// Display name in Chinese.
    pub name_zh: String,
    /// Display name in English.
    pub name_en: String,
    /// The unit quantities are counted in.
    pub unit: Unit,
    /// Emission factor: milligrams of CO2e avoided per unit (0.1073 kg/kWh = 107_300).
    pub mg_co2e_per_unit: u64,
    /// Whole points per unit.
    pub points_per_unit: u32,
    /// The largest quantity one submission may carry, in units.
    pub max_quantity_per_submission: u32,
    /// The most units one student may score per school-local day.
    pub daily_cap_per_student: u32,
    /// Methods accepted besides a teacher, who is always accepted.
    pub verification: Vec<VerificationMethod>,
    /// Citation of the published factor and its derivation.
    pub factor_source: String,
    /// Short tag of the factor edition, e.g. `desnz-2025`.
    pub factor_version: String,
}

impl Behavior {
    /// Whether this behaviour may be verified by `method`. A teacher always may.
    pub fn accepts(&self, method: VerificationMethod) -> bool {
        method == VerificationMethod::Teacher || self.verification.contains(&method)
    }
}

/// What is wrong with one field of a catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The key is absent.
    #[error("is missing")]
    Missing,
    /// The text or list is empty.
    #[error("must not be empty")]
    Empty,
    /// The number is zero or negative.
    #[error("must be positive")]
    NotPositive,
    /// The number does not fit its type.
    #[error("is too large (at most {max})")]
    TooLarge {
        /// The largest accepted value.
        max: u64,
    },
    /// The id is not snake_case.
    #[error("`{0}` is not snake_case (a-z, 0-9, single underscores, a letter first)")]
    NotSnakeCase(String),
    /// The unit is not one of [`Unit::ALL`].
    #[error("`{0}` is not a known unit (meal, kg, item, km, kwh, sheet, m3)")]
    UnknownUnit(String),
    /// The method is not one of [`VerificationMethod::ALL`].
    #[error("`{0}` is not a known verification method (teacher, peer, station)")]
    UnknownMethod(String),
    /// A method is listed twice.
    #[error("lists `{0}` twice")]
    DuplicateMethod(VerificationMethod),
    /// One submission could carry more than a whole day's cap.
    #[error("must not exceed daily_cap_per_student ({cap})")]
    ExceedsDailyCap {
        /// The entry's daily cap.
        cap: u32,
    },
    /// A day's cap times the factor does not fit in 64 bits.
    #[error("times daily_cap_per_student overflows 64 bits")]
    Overflows,
}

/// Why a catalogue was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// Not TOML, a wrong value type, or an unknown key (the message carries the line).
    #[error("behaviour catalogue is not valid TOML: {0}")]
    Syntax(String),
    /// No `[[behavior]]` entries.
    #[error("behaviour catalogue defines no behaviours")]
    Empty,
    /// One field of one entry is wrong. `behavior` is the entry's id, or `#n` (1-based position)
    /// when the id itself is missing or invalid.
    #[error("behavior `{behavior}`: {field} {problem}")]
    Invalid {
        /// The entry's id or position.
        behavior: String,
        /// The TOML key.
        field: &'static str,
        /// What is wrong.
        problem: Problem,
    },
    /// Two entries share an id.
    #[error("behavior `{0}` is defined more than once")]
    DuplicateId(BehaviorId),
}

/// The validated set of behaviours, keyed by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    behaviors: BTreeMap<BehaviorId, Behavior>,
}

impl Catalogue {
    /// Parses and validates a catalogue in the format of `config/behaviors.toml`.
    pub fn from_toml_str(text: &str) -> Result<Self, CatalogueError> {
        let raw: RawCatalogue =
            toml::from_str(text).map_err(|e| CatalogueError::Syntax(e.to_string()))?;
        if raw.behavior.is_empty() {
            return Err(CatalogueError::Empty);
        }
        let mut behaviors = BTreeMap::new();
        for (index, entry) in raw.behavior.into_iter().enumerate() {
            let behavior = entry.validate(index + 1)?;
            if behaviors.contains_key(&behavior.id) {
                return Err(CatalogueError::DuplicateId(behavior.id));
            }
            behaviors.insert(behavior.id.clone(), behavior);
        }
        Ok(Self { behaviors })
    }

    /// The behaviour with this id.
    pub fn get(&self, id: &str) -> Option<&Behavior> {
        self.behaviors.get(id)
    }

    /// Every behaviour, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &Behavior> {
        self.behaviors.values()
    }

    /// How many behaviours there are (never zero).
    pub fn len(&self) -> usize {
        self.behaviors.len()
    }

    /// Always false: a catalogue has at least one behaviour. Here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.behaviors.is_empty()
    }
}

/// The file as written, every key optional so a missing one is reported with its entry's name.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    #[serde(default)]
    behavior: Vec<RawBehavior>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBehavior {
    id: Option<String>,
    name_zh: Option<String>,
    name_en: Option<String>,
    unit: Option<String>,
    mg_co2e_per_unit: Option<i64>,
    points_per_unit: Option<i64>,
    max_quantity_per_submission: Option<i64>,
    daily_cap_per_student: Option<i64>,
    verification: Option<Vec<String>>,
    factor_source: Option<String>,
    factor_version: Option<String>,
}

impl RawBehavior {
    fn validate(self, position: usize) -> Result<Behavior, CatalogueError> {
        let fail = |behavior: &str, field, problem| CatalogueError::Invalid {
            behavior: behavior.to_owned(),
            field,
            problem,
        };
        let position_name = format!("#{position}");
        let id = match self.id {
            None => return Err(fail(&position_name, "id", Problem::Missing)),
            Some(raw) => BehaviorId::parse(&raw)
                .map_err(|_| fail(&position_name, "id", Problem::NotSnakeCase(raw)))?,
        };
        let name = id.as_str();
        let text = |value: Option<String>, field| match value.map(|v| v.trim().to_owned()) {
            None => Err(fail(name, field, Problem::Missing)),
            Some(v) if v.is_empty() => Err(fail(name, field, Problem::Empty)),
            Some(v) => Ok(v),
        };
        let positive = |value: Option<i64>, field, max: u64| match value {
            None => Err(fail(name, field, Problem::Missing)),
            Some(v) if v <= 0 => Err(fail(name, field, Problem::NotPositive)),
            Some(v) if v.unsigned_abs() > max => Err(fail(name, field, Problem::TooLarge { max })),
            Some(v) => Ok(v.unsigned_abs()),
        };
        let name_zh = text(self.name_zh, "name_zh")?;
        let name_en = text(self.name_en, "name_en")?;
        let unit_name = text(self.unit, "unit")?;
        let unit = Unit::parse(&unit_name)
            .ok_or_else(|| fail(name, "unit", Problem::UnknownUnit(unit_name)))?;
        let mg_co2e_per_unit = positive(self.mg_co2e_per_unit, "mg_co2e_per_unit", u64::MAX)?;
        let u32_max = u64::from(u32::MAX);
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let points_per_unit = narrow(positive(self.points_per_unit, "points_per_unit", u32_max)?);
        let max_quantity_per_submission = narrow(positive(
            self.max_quantity_per_submission,
            "max_quantity_per_submission",
            u32_max,
        )?);
        let daily_cap_per_student = narrow(positive(
            self.daily_cap_per_student,
            "daily_cap_per_student",
            u32_max,
        )?);
        if max_quantity_per_submission > daily_cap_per_student {
            return Err(fail(
                name,
                "max_quantity_per_submission",
                Problem::ExceedsDailyCap {
                    cap: daily_cap_per_student,
                },
            ));
        }
        if mg_co2e_per_unit
            .checked_mul(u64::from(daily_cap_per_student))
            .is_none()
        {
            return Err(fail(name, "mg_co2e_per_unit", Problem::Overflows));
        }
        let methods = self
            .verification
            .ok_or_else(|| fail(name, "verification", Problem::Missing))?;
        if methods.is_empty() {
            return Err(fail(name, "verification", Problem::Empty));
        }
        let mut verification = Vec::with_capacity(methods.len());
        for raw in methods {
            let method = VerificationMethod::parse(raw.trim())
                .ok_or_else(|| fail(name, "verification", Problem::UnknownMethod(raw)))?;
            if verification.contains(&method) {
                return Err(fail(name, "verification", Problem::DuplicateMethod(method)));
            }
            verification.push(method);
        }
        let factor_source = text(self.factor_source, "factor_source")?;
        let factor_version = text(self.factor_version, "factor_version")?;
        Ok(Behavior {
            id,
            name_zh,
            name_en,
            unit,
            mg_co2e_per_unit,
            points_per_unit,
            max_quantity_per_submission,
            daily_cap_per_student,
            verification,
            factor_source,
            factor_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../config/behaviors.toml");

    const VALID_ENTRY: &str = r#"
[[behavior]]
id = "meatless_meal"
name_zh = "素食餐"
name_en = "Meatless meal"
unit = "meal"
mg_co2e_per_unit = 100_000
points_per_unit = 1
max_quantity_per_submission = 1
daily_cap_per_student = 2
verification = ["station", "peer"]
factor_source = "OWID"
factor_version = "owid-2018-older"
"#;

    /// The valid entry with one line replaced (or removed, when `with` is empty).
    fn entry_with(key: &str, with: &str) -> String {
        VALID_ENTRY
            .lines()
            .map(|line| {
                if line.starts_with(&format!("{key} =")) {
                    with.to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn error_of(text: &str) -> String {
        Catalogue::from_toml_str(text)
            .expect_err("the catalogue should be refused")
            .to_string()
    }

    #[test]
    fn the_shipped_catalogue_validates_and_covers_the_programme_behaviours() {
        let catalogue = Catalogue::from_toml_str(SHIPPED).expect("config/behaviors.toml is valid");
        for id in [
            "meatless_meal",
            "clean_plate",
            "waste_sorted",
            "reusable_bottle",
            "reusable_cup",
            "walk_or_cycle",
            "bus_instead_of_car",
            "lights_off",
            "double_sided_printing",
            "water_saved",
        ] {
            assert!(catalogue.get(id).is_some(), "missing behaviour {id}");
        }
        let lights = catalogue.get("lights_off").unwrap();
        assert_eq!(lights.unit, Unit::Kwh);
        assert_eq!(lights.mg_co2e_per_unit, 107_300, "Yunnan 2022 grid factor");
        assert_eq!(lights.factor_version, "mee-2022-yunnan");
        assert_eq!(catalogue.get("walk_or_cycle").unwrap().unit, Unit::Km);
        assert_eq!(catalogue.get("waste_sorted").unwrap().unit, Unit::Kg);
    }

    #[test]
    fn the_shipped_points_follow_one_point_per_tenth_of_a_kilogram_rounded_down_but_at_least_one() {
        let catalogue = Catalogue::from_toml_str(SHIPPED).unwrap();
        for b in catalogue.iter() {
            let expected = (b.mg_co2e_per_unit / 100_000).max(1);
            assert_eq!(u64::from(b.points_per_unit), expected, "behaviour {}", b.id);
        }
    }

    #[test]
    fn every_shipped_behaviour_cites_its_factor() {
        let catalogue = Catalogue::from_toml_str(SHIPPED).unwrap();
        for b in catalogue.iter() {
            assert!(b.factor_source.contains("Table A"), "{} cites no row", b.id);
            assert!(!b.factor_version.is_empty());
        }
    }

    #[test]
    fn a_valid_entry_parses_into_typed_fields() {
        let catalogue = Catalogue::from_toml_str(VALID_ENTRY).unwrap();
        let b = catalogue.get("meatless_meal").unwrap();
        assert_eq!(b.name_zh, "素食餐");
        assert_eq!(b.unit, Unit::Meal);
        assert_eq!(b.mg_co2e_per_unit, 100_000);
        assert_eq!(b.points_per_unit, 1);
        assert_eq!(
            b.verification,
            vec![VerificationMethod::Station, VerificationMethod::Peer]
        );
        assert_eq!(catalogue.len(), 1);
    }

    #[test]
    fn a_teacher_may_verify_a_behaviour_that_does_not_list_teachers() {
        let catalogue = Catalogue::from_toml_str(VALID_ENTRY).unwrap();
        let b = catalogue.get("meatless_meal").unwrap();
        assert!(b.accepts(VerificationMethod::Teacher));
        assert!(b.accepts(VerificationMethod::Peer));
        let mut teacher_only = b.clone();
        teacher_only.verification = vec![VerificationMethod::Teacher];
        assert!(!teacher_only.accepts(VerificationMethod::Station));
    }

    #[test]
    fn zero_points_are_refused_naming_the_entry_and_field() {
        assert_eq!(
            error_of(&entry_with("points_per_unit", "points_per_unit = 0")),
            "behavior `meatless_meal`: points_per_unit must be positive"
        );
    }

    #[test]
    fn a_negative_factor_is_refused() {
        assert_eq!(
            error_of(&entry_with("mg_co2e_per_unit", "mg_co2e_per_unit = -5")),
            "behavior `meatless_meal`: mg_co2e_per_unit must be positive"
        );
    }

    #[test]
    fn a_missing_key_is_refused_naming_it() {
        assert_eq!(
            error_of(&entry_with("daily_cap_per_student", "")),
            "behavior `meatless_meal`: daily_cap_per_student is missing"
        );
    }

    #[test]
    fn an_entry_without_an_id_is_named_by_its_position() {
        assert_eq!(
            error_of(&entry_with("id", "")),
            "behavior `#1`: id is missing"
        );
    }

    #[test]
    fn an_id_that_is_not_snake_case_is_refused() {
        let err = error_of(&entry_with("id", r#"id = "Meatless-Meal""#));
        assert!(err.starts_with("behavior `#1`: id `Meatless-Meal` is not snake_case"));
    }

    #[test]
    fn an_empty_name_is_refused() {
        assert_eq!(
            error_of(&entry_with("name_en", r#"name_en = "  ""#)),
            "behavior `meatless_meal`: name_en must not be empty"
        );
    }

    #[test]
    fn an_unknown_unit_is_refused() {
        assert!(
            error_of(&entry_with("unit", r#"unit = "bucket""#))
                .starts_with("behavior `meatless_meal`: unit `bucket` is not a known unit")
        );
    }

    #[test]
    fn an_empty_verification_list_is_refused() {
        assert_eq!(
            error_of(&entry_with("verification", "verification = []")),
            "behavior `meatless_meal`: verification must not be empty"
        );
    }

    #[test]
    fn an_unknown_or_repeated_verification_method_is_refused() {
        assert!(
            error_of(&entry_with("verification", r#"verification = ["parent"]"#))
                .contains("`parent` is not a known verification method")
        );
        assert_eq!(
            error_of(&entry_with(
                "verification",
                r#"verification = ["peer", "peer"]"#
            )),
            "behavior `meatless_meal`: verification lists `peer` twice"
        );
    }

    #[test]
    fn a_submission_maximum_above_the_daily_cap_is_refused() {
        assert_eq!(
            error_of(&entry_with(
                "max_quantity_per_submission",
                "max_quantity_per_submission = 3"
            )),
            "behavior `meatless_meal`: max_quantity_per_submission must not exceed \
             daily_cap_per_student (2)"
        );
    }

    #[test]
    fn points_beyond_32_bits_are_refused() {
        assert!(
            error_of(&entry_with(
                "points_per_unit",
                "points_per_unit = 5000000000"
            ))
            .contains("points_per_unit is too large")
        );
    }

    #[test]
    fn a_factor_whose_daily_total_overflows_is_refused() {
        let text = entry_with("mg_co2e_per_unit", "mg_co2e_per_unit = 9223372036854775807")
            .replace("daily_cap_per_student = 2", "daily_cap_per_student = 3");
        assert_eq!(
            error_of(&text),
            "behavior `meatless_meal`: mg_co2e_per_unit times daily_cap_per_student overflows 64 bits"
        );
    }

    #[test]
    fn a_duplicate_id_is_refused() {
        let text = format!("{VALID_ENTRY}\n{VALID_ENTRY}");
        assert_eq!(
            error_of(&text),
            "behavior `meatless_meal` is defined more than once"
        );
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let text = format!("{VALID_ENTRY}colour = \"green\"\n");
        assert!(error_of(&text).contains("colour"));
    }

    #[test]
    fn an_empty_catalogue_is_refused() {
        assert_eq!(
            Catalogue::from_toml_str("# nothing\n"),
            Err(CatalogueError::Empty)
        );
    }

    #[test]
    fn behaviour_ids_are_snake_case() {
        for good in ["a", "meatless_meal", "pet2_recycled"] {
            assert!(BehaviorId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "_a",
            "a_",
            "a__b",
            "Ab",
            "1a",
            "a-b",
            "a b",
            "素食",
            &"a".repeat(65),
        ] {
            assert!(BehaviorId::parse(bad).is_err(), "{bad}");
        }
    }
}
