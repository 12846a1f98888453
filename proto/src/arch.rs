//! Architecture names: Koji's (`x86_64`, `aarch64`...) as OSBS speaks them, and the
//! engine's and image config's (Go's `amd64`, `arm64` + variant `v8`...) they map to.

/// The architecture a build has when nothing narrows it (a target without `arches`).
pub const DEFAULT_ARCH: &str = "x86_64";

/// One architecture in both namings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    /// Koji's name: `x86_64`.
    pub koji: &'static str,
    /// The OCI/Docker `architecture`: `amd64`.
    pub oci: &'static str,
    /// The OCI/Docker `variant`, where one applies: `v8` for `arm64`.
    pub variant: Option<&'static str>,
}

impl Arch {
    /// The engine's platform string for a build: `linux/arm64`.
    pub fn platform(&self) -> String {
        format!("linux/{}", self.oci)
    }
}

/// Every architecture OSBS knows (Fedora's four, plus the 32-bit ones an engine may report).
pub const KNOWN: [Arch; 7] = [
    Arch {
        koji: "x86_64",
        oci: "amd64",
        variant: None,
    },
    Arch {
        koji: "aarch64",
        oci: "arm64",
        variant: Some("v8"),
    },
    Arch {
        koji: "ppc64le",
        oci: "ppc64le",
        variant: None,
    },
    Arch {
        koji: "s390x",
        oci: "s390x",
        variant: None,
    },
    Arch {
        koji: "i686",
        oci: "386",
        variant: None,
    },
    Arch {
        koji: "armv7hl",
        oci: "arm",
        variant: Some("v7"),
    },
    Arch {
        koji: "riscv64",
        oci: "riscv64",
        variant: None,
    },
];

/// The architecture named `name` in either naming (`x86_64`, `amd64`, `arm64`,
/// `aarch64`...); `None` for a name OSBS does not know.
pub fn lookup(name: &str) -> Option<Arch> {
    KNOWN
        .iter()
        .copied()
        .find(|arch| arch.koji == name || arch.oci == name)
}

/// Koji's name for `name` in either naming; an unknown name is returned as it is.
pub fn koji_name(name: &str) -> String {
    lookup(name).map_or_else(|| name.to_string(), |arch| arch.koji.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_namings_map_to_one_arch() {
        let table = [
            ("x86_64", "x86_64", "amd64", None),
            ("amd64", "x86_64", "amd64", None),
            ("aarch64", "aarch64", "arm64", Some("v8")),
            ("arm64", "aarch64", "arm64", Some("v8")),
            ("ppc64le", "ppc64le", "ppc64le", None),
            ("s390x", "s390x", "s390x", None),
        ];
        for (name, koji, oci, variant) in table {
            let arch = lookup(name).unwrap();
            assert_eq!(
                (arch.koji, arch.oci, arch.variant),
                (koji, oci, variant),
                "{name}"
            );
        }
        assert_eq!(lookup("arm64").unwrap().platform(), "linux/arm64");
        assert_eq!(lookup("mips"), None);
        assert_eq!(koji_name("amd64"), "x86_64");
        assert_eq!(koji_name("mips"), "mips");
    }
}
