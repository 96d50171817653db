//! APQN: adapter (APID) + domain (APQI), written `05.0004` as in sysfs.

use std::fmt;
use std::str::FromStr;

/// An AP queue number. Orders by adapter, then domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Apqn {
    /// The adapter id (APID).
    pub adapter: u8,
    /// The domain id (APQI).
    pub domain: u8,
}

impl Apqn {
    /// The queue (adapter, domain).
    pub const fn new(adapter: u8, domain: u8) -> Self {
        Self { adapter, domain }
    }

    /// The queue's sysfs name, `05.0004` (same as Display).
    pub fn sysfs_name(&self) -> String {
        self.to_string()
    }

    /// The card directory name of its adapter, `card05`.
    pub fn card_name(&self) -> String {
        format!("card{:02x}", self.adapter)
    }
}

impl fmt::Display for Apqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}.{:04x}", self.adapter, self.domain)
    }
}

/// A string that is not an APQN `XX.YYYY`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid APQN {input:?}: {reason}")]
pub struct ApqnError {
    /// The input.
    pub input: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl FromStr for Apqn {
    type Err = ApqnError;

    /// Exactly two hex digits, `.`, four hex digits (either case); the
    /// domain must be at most 0x00ff.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let e = |reason| ApqnError {
            input: s.to_string(),
            reason,
        };
        let (a, d) = s
            .split_once('.')
            .ok_or_else(|| e("expected adapter.domain such as 05.0004"))?;
        if a.len() != 2 || !a.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(e("the adapter must be two hex digits, as in 05.0004"));
        }
        if d.len() != 4 || !d.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(e("the domain must be four hex digits, as in 05.0004"));
        }
        let adapter = u8::from_str_radix(a, 16).map_err(|_| e("bad adapter"))?;
        let domain = u16::from_str_radix(d, 16).map_err(|_| e("bad domain"))?;
        let domain = u8::try_from(domain).map_err(|_| e("the domain is above 0x00ff"))?;
        Ok(Apqn { adapter, domain })
    }
}

impl serde::Serialize for Apqn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Apqn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse() {
        assert_eq!(Apqn::new(5, 4).to_string(), "05.0004");
        assert_eq!(Apqn::new(0xff, 0xab).to_string(), "ff.00ab");
        assert_eq!("05.0004".parse(), Ok(Apqn::new(5, 4)));
        assert_eq!("FF.00AB".parse(), Ok(Apqn::new(0xff, 0xab)));
        assert_eq!(Apqn::new(5, 4).card_name(), "card05");
    }

    #[test]
    fn bad_apqns() {
        for bad in [
            "",
            "05",
            "5.0004",
            "05.004",
            "05.00004",
            "05.0100",
            "0x5.0004",
            "05.000g",
            "05,0004",
            " 05.0004",
            "05.0004\n",
            "005.0004",
            "05.+004",
        ] {
            assert!(bad.parse::<Apqn>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn order() {
        let mut v = vec![Apqn::new(6, 0), Apqn::new(5, 0xff), Apqn::new(5, 4)];
        v.sort();
        assert_eq!(
            v,
            vec![Apqn::new(5, 4), Apqn::new(5, 0xff), Apqn::new(6, 0)]
        );
    }
}
