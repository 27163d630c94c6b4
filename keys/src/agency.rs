//! Who an agency is: its id, name, kind and country.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest agency id, in bytes.
pub const MAX_AGENCY_ID_LEN: usize = 64;
/// The longest label between two dots of an agency id.
pub const MAX_AGENCY_ID_LABEL_LEN: usize = 32;
/// The longest display name, in bytes.
pub const MAX_AGENCY_NAME_LEN: usize = 128;

/// The rule an agency id follows, shown to people whose id was refused.
pub const AGENCY_ID_RULE: &str = "an agency id is 2 or more dot-separated labels of lowercase \
     letters a-z, digits and '-', each starting with a letter, at most 32 characters per label \
     and 64 in all, e.g. `nl.probation.utrecht`";

/// Why a piece of agency information was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgencyError {
    /// The id breaks [`AGENCY_ID_RULE`].
    #[error("invalid agency id `{id}`: {AGENCY_ID_RULE}")]
    InvalidId {
        /// The refused id (truncated for display).
        id: String,
    },
    /// The kind is not one of the known kinds.
    #[error(
        "unknown agency kind `{kind}`: use one of city, probation, prison, police, court, ngo, other"
    )]
    UnknownKind {
        /// The refused kind.
        kind: String,
    },
    /// The country is not two ASCII letters.
    #[error(
        "invalid country `{country}`: use a two-letter ISO 3166-1 alpha-2 code such as NL or DE"
    )]
    InvalidCountry {
        /// The refused country.
        country: String,
    },
    /// Two letters that are not an assigned ISO 3166-1 alpha-2 code.
    #[error(
        "`{country}` is not an ISO 3166-1 alpha-2 country code: use the code of the agency's country, such as NL, DE or BE{hint}"
    )]
    UnassignedCountry {
        /// The refused code, in upper case.
        country: String,
        /// For a code Europe uses beside ISO's, which ISO code to give.
        hint: &'static str,
    },
    /// The display name is empty, too long or has control characters.
    #[error(
        "invalid agency name: it must be 1 to {MAX_AGENCY_NAME_LEN} bytes without control characters"
    )]
    InvalidName,
}

/// A validated agency id such as `nl.probation.utrecht`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgencyId(String);

impl AgencyId {
    /// Validates an id against [`AGENCY_ID_RULE`].
    pub fn new(id: &str) -> Result<Self, AgencyError> {
        let refuse = || AgencyError::InvalidId {
            id: id.chars().take(MAX_AGENCY_ID_LEN + 8).collect(),
        };
        if id.len() > MAX_AGENCY_ID_LEN {
            return Err(refuse());
        }
        let labels: Vec<&str> = id.split('.').collect();
        if labels.len() < 2 {
            return Err(refuse());
        }
        for label in labels {
            let mut chars = label.chars();
            let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
            let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !starts_with_letter || !rest_ok || label.len() > MAX_AGENCY_ID_LABEL_LEN {
                return Err(refuse());
            }
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AgencyId {
    type Err = AgencyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for AgencyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AgencyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::new(&text).map_err(serde::de::Error::custom)
    }
}

/// What sort of body an agency is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgencyKind {
    /// A municipality.
    City,
    /// A probation service.
    Probation,
    /// A prison or detention centre.
    Prison,
    /// A police force.
    Police,
    /// A court or prosecution office.
    Court,
    /// A non-governmental organisation.
    Ngo,
    /// Anything else.
    Other,
}

impl AgencyKind {
    /// The lowercase name used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::City => "city",
            Self::Probation => "probation",
            Self::Prison => "prison",
            Self::Police => "police",
            Self::Court => "court",
            Self::Ngo => "ngo",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for AgencyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgencyKind {
    type Err = AgencyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "city" => Self::City,
            "probation" => Self::Probation,
            "prison" => Self::Prison,
            "police" => Self::Police,
            "court" => Self::Court,
            "ngo" => Self::Ngo,
            "other" => Self::Other,
            _ => return Err(AgencyError::UnknownKind { kind: s.to_owned() }),
        })
    }
}

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted.
const ASSIGNED_COUNTRIES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Codes outside [`ASSIGNED_COUNTRIES`] that public agencies in Europe use: `EU` (exceptionally
/// reserved by ISO for the European Union, for its agencies such as Europol and Eurojust) and
/// `XK` (Kosovo, as the EU and its member states code it).
const ALSO_ACCEPTED_COUNTRIES: [&str; 2] = ["EU", "XK"];

/// An ISO 3166-1 alpha-2 country code, stored in upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country([u8; 2]);

impl Country {
    /// Accepts two ASCII letters in either case.
    pub fn new(code: &str) -> Result<Self, AgencyError> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(AgencyError::InvalidCountry {
                country: code.chars().take(40).collect(),
            }),
        }
    }

    /// Accepts a code ISO 3166-1 has assigned (or `EU`, `XK`), in either case: what a new
    /// agency may give. [`Country::new`] accepts any two letters, so that a roster naming a
    /// code assigned after this list was written still reads.
    pub fn assigned(code: &str) -> Result<Self, AgencyError> {
        let country = Self::new(code)?;
        let text = country.as_str();
        if ASSIGNED_COUNTRIES.binary_search(&text).is_ok()
            || ALSO_ACCEPTED_COUNTRIES.contains(&text)
        {
            Ok(country)
        } else {
            // The EU's own abbreviations for the United Kingdom and Greece.
            let hint = match text {
                "UK" => " (the United Kingdom's is GB)",
                "EL" => " (Greece's is GR)",
                _ => "",
            };
            Err(AgencyError::UnassignedCountry {
                country: text.to_owned(),
                hint,
            })
        }
    }

    /// The code as text, e.g. `NL`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Country {
    type Err = AgencyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Files and messages carry the canonical upper-case form only; people may type either.
        let text = String::deserialize(d)?;
        match Self::new(&text) {
            Ok(country) if country.as_str() == text => Ok(country),
            _ => Err(serde::de::Error::custom(AgencyError::InvalidCountry {
                country: text.chars().take(40).collect(),
            })),
        }
    }
}

/// Checks a display name: 1 to [`MAX_AGENCY_NAME_LEN`] bytes, no control characters.
pub fn validate_name(name: &str) -> Result<(), AgencyError> {
    if name.trim().is_empty()
        || name.len() > MAX_AGENCY_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(AgencyError::InvalidName);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn agency_ids() {
        for good in [
            "nl.probation.utrecht",
            "be.city.gent",
            "de.jva-tegel.berlin",
            "a.b",
        ] {
            assert_eq!(AgencyId::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "utrecht",
            "NL.probation",
            "nl..x",
            ".nl.x",
            "nl.x.",
            "nl.1x",
            "nl.x_y",
            "nl.x y",
            "nl.-x",
            "nl.prob/../x",
        ] {
            let err = AgencyId::new(bad).unwrap_err();
            assert!(err.to_string().contains("lowercase"), "{err}");
        }
    }

    #[test]
    fn agency_id_limits() {
        let label = "a".repeat(MAX_AGENCY_ID_LABEL_LEN);
        assert!(AgencyId::new(&format!("nl.{label}")).is_ok());
        assert!(AgencyId::new(&format!("nl.{label}a")).is_err());
        let at_limit = format!("{}.{}", "b".repeat(31), "c".repeat(MAX_AGENCY_ID_LEN - 32));
        assert_eq!(at_limit.len(), MAX_AGENCY_ID_LEN);
        assert!(AgencyId::new(&at_limit).is_ok());
        assert!(AgencyId::new(&format!("{at_limit}d")).is_err());
    }

    #[test]
    fn kinds_and_countries() {
        assert_eq!("Prison".parse::<AgencyKind>().unwrap(), AgencyKind::Prison);
        assert!("bank".parse::<AgencyKind>().is_err());
        assert_eq!(Country::new("nl").unwrap().as_str(), "NL");
        assert!(Country::new("NLD").is_err());
        assert!(Country::new("1A").is_err());
        // Any two letters read (a roster may name a code assigned later); a new agency
        // must give an assigned one.
        assert!(Country::new("QQ").is_ok());
        assert_eq!(Country::assigned("de").unwrap().as_str(), "DE");
        assert!(Country::assigned("ZW").is_ok() && Country::assigned("AD").is_ok());
        assert!(Country::assigned("EU").is_ok() && Country::assigned("XK").is_ok());
        for unassigned in ["QQ", "AB", "UK", "XX", "ZZ"] {
            assert!(
                matches!(
                    Country::assigned(unassigned),
                    Err(AgencyError::UnassignedCountry { .. })
                ),
                "{unassigned}"
            );
        }
        assert!(matches!(
            Country::assigned("NLD"),
            Err(AgencyError::InvalidCountry { .. })
        ));
        let uk = Country::assigned("uk").unwrap_err().to_string();
        assert!(uk.contains("`UK` is not") && uk.contains("is GB"), "{uk}");
        assert!(
            Country::assigned("EL")
                .unwrap_err()
                .to_string()
                .contains("is GR")
        );
        assert!(
            ASSIGNED_COUNTRIES.windows(2).all(|w| w[0] < w[1]),
            "sorted, no repeats"
        );
        assert!(validate_name("Reclassering Utrecht").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name(&"x".repeat(MAX_AGENCY_NAME_LEN + 1)).is_err());
    }
}
