//! AWS partition data for endpoint resolution (docs/protocol.md §1.2, `sdk-partitions.json` as of
//! 2025-10-02).
//!
//! A region belongs to the first partition that lists it explicitly, else the first whose
//! region pattern it matches, else to `aws`. The patterns are all of the form
//! `^{prefix}\-\w+\-\d+$`, so they are matched by [`Partition::matches_pattern`] instead of a regex
//! engine (which would be the largest dependency of the core).

/// One AWS partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Partition id, e.g. `aws-cn`.
    pub name: &'static str,
    /// The alternatives of the first group of `regionRegex` (`us|eu|…` for `aws`).
    pub region_prefixes: &'static [&'static str],
    /// Pseudo-regions listed explicitly in the partition (the `*-global` ones).
    pub explicit_regions: &'static [&'static str],
    /// DNS suffix of the default endpoints.
    pub dns_suffix: &'static str,
    /// DNS suffix of the dual-stack endpoints.
    pub dual_stack_dns_suffix: &'static str,
    /// Whether FIPS endpoints exist.
    pub supports_fips: bool,
    /// Whether dual-stack endpoints exist.
    pub supports_dual_stack: bool,
}

/// Every partition, in the order of the partition file.
pub const PARTITIONS: [Partition; 8] = [
    Partition {
        name: "aws",
        region_prefixes: &["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"],
        explicit_regions: &["aws-global"],
        dns_suffix: "amazonaws.com",
        dual_stack_dns_suffix: "api.aws",
        supports_fips: true,
        supports_dual_stack: true,
    },
    Partition {
        name: "aws-cn",
        region_prefixes: &["cn"],
        explicit_regions: &["aws-cn-global"],
        dns_suffix: "amazonaws.com.cn",
        dual_stack_dns_suffix: "api.amazonwebservices.com.cn",
        supports_fips: true,
        supports_dual_stack: true,
    },
    Partition {
        name: "aws-us-gov",
        region_prefixes: &["us-gov"],
        explicit_regions: &["aws-us-gov-global"],
        dns_suffix: "amazonaws.com",
        dual_stack_dns_suffix: "api.aws",
        supports_fips: true,
        supports_dual_stack: true,
    },
    Partition {
        name: "aws-iso",
        region_prefixes: &["us-iso"],
        explicit_regions: &["aws-iso-global"],
        dns_suffix: "c2s.ic.gov",
        dual_stack_dns_suffix: "api.aws.ic.gov",
        supports_fips: true,
        supports_dual_stack: true,
    },
    Partition {
        name: "aws-iso-b",
        region_prefixes: &["us-isob"],
        explicit_regions: &["aws-iso-b-global"],
        dns_suffix: "sc2s.sgov.gov",
        dual_stack_dns_suffix: "api.aws.scloud",
        supports_fips: true,
        supports_dual_stack: true,
    },
    Partition {
        name: "aws-iso-e",
        region_prefixes: &["eu-isoe"],
        explicit_regions: &["aws-iso-e-global"],
        dns_suffix: "cloud.adc-e.uk",
        dual_stack_dns_suffix: "api.cloud-aws.adc-e.uk",
        supports_fips: true,
        supports_dual_stack: true,
    },
    Partition {
        name: "aws-iso-f",
        region_prefixes: &["us-isof"],
        explicit_regions: &["aws-iso-f-global"],
        dns_suffix: "csp.hci.ic.gov",
        dual_stack_dns_suffix: "api.aws.hci.ic.gov",
        supports_fips: true,
        supports_dual_stack: true,
    },
    Partition {
        name: "aws-eusc",
        region_prefixes: &["eusc-de"],
        explicit_regions: &[],
        dns_suffix: "amazonaws.eu",
        dual_stack_dns_suffix: "api.amazonwebservices.eu",
        supports_fips: true,
        supports_dual_stack: true,
    },
];

impl Partition {
    /// Whether `region` matches `^({prefixes})\-\w+\-\d+$`.
    pub fn matches_pattern(&self, region: &str) -> bool {
        self.region_prefixes.iter().any(|prefix| {
            region
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(word_dash_digits)
        })
    }
}

/// `\w+\-\d+` with nothing after: `\w` excludes `-`, so the split is at the only `-`.
fn word_dash_digits(s: &str) -> bool {
    let Some((word, digits)) = s.split_once('-') else {
        return false;
    };
    !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The partition of `region`: explicit listing first, then pattern, then `aws`.
pub fn partition_of(region: &str) -> &'static Partition {
    PARTITIONS
        .iter()
        .find(|p| p.explicit_regions.contains(&region))
        .or_else(|| PARTITIONS.iter().find(|p| p.matches_pattern(region)))
        .unwrap_or(&PARTITIONS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_their_partitions() {
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("mx-central-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
            ("aws-cn-global", "aws-cn"),
            ("mars-north-1", "aws"),
            ("localhost", "aws"),
        ] {
            assert_eq!(partition_of(region).name, partition, "{region}");
        }
    }

    #[test]
    fn the_pattern_needs_a_word_and_digits() {
        let aws = &PARTITIONS[0];
        assert!(aws.matches_pattern("us-east-1"));
        assert!(!aws.matches_pattern("us-east-"));
        assert!(!aws.matches_pattern("us--1"));
        assert!(!aws.matches_pattern("us-east-1a"));
        assert!(!aws.matches_pattern("us-gov-west-1"));
    }
}
