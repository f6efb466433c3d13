//! Endpoint resolution: region and flags to a URL, by the Cognito endpoint rule set
//! (docs/protocol.md §1.2), plus a custom endpoint override.
//!
//! One rule is added to the official rule set: the region must be a valid DNS host label
//! (letters, digits and `-`, 1 to 63 characters, no `-` at either end). The rule set pastes the
//! region into the host name unchecked, so `us-east-1.evil.example/x` would send the refresh
//! token to `evil.example`; here it is an [`EndpointError::InvalidRegion`].
//!
//! Nothing here reads the environment unless asked: [`EndpointConfig::from_env`] does, with
//! the conventional AWS variables.
//!
//! ```
//! use cogref_core::EndpointConfig;
//! let ep = EndpointConfig::new().region("eu-west-1").use_fips(true).resolve()?;
//! assert_eq!(ep.url(), "https://cognito-idp-fips.eu-west-1.amazonaws.com/");
//!
//! let local = EndpointConfig::new().endpoint_url("http://127.0.0.1:9229").resolve()?;
//! assert_eq!(local.host(), "127.0.0.1:9229");
//! # Ok::<(), cogref_core::EndpointError>(())
//! ```

use std::fmt;

use http::uri::Scheme;
use http::{HeaderValue, Uri};

use crate::protocol::partition::partition_of;

/// Why an endpoint could not be resolved. Never contains a URL's user-info.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Neither a region nor a custom endpoint was configured.
    #[error("Invalid Configuration: Missing Region (set a region or an endpoint URL)")]
    MissingRegion,
    /// The region is not a valid DNS host label.
    #[error(
        "invalid region {region:?}: a region must be 1 to 63 letters, digits or '-', not starting or ending with '-'"
    )]
    InvalidRegion {
        /// The rejected region, as given.
        region: String,
    },
    /// FIPS was requested together with a custom endpoint.
    #[error("Invalid Configuration: FIPS and custom endpoint are not supported")]
    FipsWithCustomEndpoint,
    /// Dual-stack was requested together with a custom endpoint.
    #[error("Invalid Configuration: Dualstack and custom endpoint are not supported")]
    DualStackWithCustomEndpoint,
    /// FIPS and dual-stack together are not offered in this partition.
    #[error(
        "FIPS and DualStack are enabled, but this partition does not support one or both (partition {partition})"
    )]
    FipsAndDualStackNotSupported {
        /// The partition of the region.
        partition: &'static str,
    },
    /// FIPS is not offered in this partition.
    #[error("FIPS is enabled but this partition does not support FIPS (partition {partition})")]
    FipsNotSupported {
        /// The partition of the region.
        partition: &'static str,
    },
    /// Dual-stack is not offered in this partition.
    #[error(
        "DualStack is enabled but this partition does not support DualStack (partition {partition})"
    )]
    DualStackNotSupported {
        /// The partition of the region.
        partition: &'static str,
    },
    /// The custom endpoint URL is unusable.
    #[error("invalid endpoint URL: {reason}")]
    InvalidEndpointUrl {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An environment variable has a value that cannot be used.
    #[error("environment variable {name} must be {expected}")]
    InvalidEnvVar {
        /// The variable's name.
        name: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

/// The inputs of endpoint resolution: region, FIPS, dual-stack and an optional override.
///
/// Defaults: no region, FIPS off, dual-stack off, no override.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointConfig {
    region: Option<String>,
    use_fips: bool,
    use_dual_stack: bool,
    endpoint_url: Option<String>,
}

/// Variables read by [`EndpointConfig::from_env`], in the order they are consulted.
pub const ENV_VARS: [&str; 7] = [
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
    "AWS_ENDPOINT_URL",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
];

impl EndpointConfig {
    /// An empty configuration (no region, no flags, no override).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the region, e.g. `eu-west-1`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Uses FIPS endpoints.
    pub fn use_fips(mut self, on: bool) -> Self {
        self.use_fips = on;
        self
    }

    /// Uses dual-stack (IPv4 and IPv6) endpoints.
    pub fn use_dual_stack(mut self, on: bool) -> Self {
        self.use_dual_stack = on;
        self
    }

    /// Overrides the endpoint with a URL (`http` or `https`, no user-info, no query). Its path,
    /// if any, prefixes the request path.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// The configured region, if any.
    pub fn get_region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Reads the process environment, as the AWS SDKs do (see [`ENV_VARS`]).
    ///
    /// `AWS_REGION` wins over `AWS_DEFAULT_REGION`; the service-specific
    /// `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER` wins over `AWS_ENDPOINT_URL`; both are ignored
    /// when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`. Boolean variables take `true` or
    /// `false` in any case. Empty variables count as unset.
    pub fn from_env() -> Result<Self, EndpointError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), with `lookup` in place of the process environment.
    ///
    /// ```
    /// use cogref_core::EndpointConfig;
    /// let cfg = EndpointConfig::from_lookup(|name| match name {
    ///     "AWS_DEFAULT_REGION" => Some("ap-south-1".into()),
    ///     "AWS_USE_FIPS_ENDPOINT" => Some("TRUE".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(cfg.resolve()?.url(), "https://cognito-idp-fips.ap-south-1.amazonaws.com/");
    /// # Ok::<(), cogref_core::EndpointError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EndpointError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let flag = |name: &'static str| -> Result<bool, EndpointError> {
            match get(name) {
                None => Ok(false),
                Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
                Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
                Some(_) => Err(EndpointError::InvalidEnvVar {
                    name,
                    expected: "true or false",
                }),
            }
        };
        let ignore_urls = flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")?;
        let endpoint_url = if ignore_urls {
            None
        } else {
            get("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER").or_else(|| get("AWS_ENDPOINT_URL"))
        };
        Ok(Self {
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .map(|r| r.trim().to_owned()),
            use_fips: flag("AWS_USE_FIPS_ENDPOINT")?,
            use_dual_stack: flag("AWS_USE_DUALSTACK_ENDPOINT")?,
            endpoint_url: endpoint_url.map(|u| u.trim().to_owned()),
        })
    }

    /// Resolves the endpoint by the rule set, in its order: custom endpoint, then region.
    pub fn resolve(&self) -> Result<Endpoint, EndpointError> {
        if let Some(url) = &self.endpoint_url {
            if self.use_fips {
                return Err(EndpointError::FipsWithCustomEndpoint);
            }
            if self.use_dual_stack {
                return Err(EndpointError::DualStackWithCustomEndpoint);
            }
            return Endpoint::custom(url);
        }
        let region = self.region.as_deref().ok_or(EndpointError::MissingRegion)?;
        if !is_host_label(region) {
            return Err(EndpointError::InvalidRegion {
                region: region.to_owned(),
            });
        }
        let p = partition_of(region);
        let host = match (self.use_fips, self.use_dual_stack) {
            (true, true) => {
                if !(p.supports_fips && p.supports_dual_stack) {
                    return Err(EndpointError::FipsAndDualStackNotSupported { partition: p.name });
                }
                // The rule set's quirk: these four regions use the FIPS host under
                // amazonaws.com, not the dual-stack suffix.
                if matches!(
                    region,
                    "us-east-1" | "us-east-2" | "us-west-1" | "us-west-2"
                ) {
                    format!("cognito-idp-fips.{region}.amazonaws.com")
                } else {
                    format!("cognito-idp-fips.{region}.{}", p.dual_stack_dns_suffix)
                }
            }
            (true, false) => {
                if !p.supports_fips {
                    return Err(EndpointError::FipsNotSupported { partition: p.name });
                }
                format!("cognito-idp-fips.{region}.{}", p.dns_suffix)
            }
            (false, true) => {
                if !p.supports_dual_stack {
                    return Err(EndpointError::DualStackNotSupported { partition: p.name });
                }
                // In the commercial partition the dual-stack host is the default host.
                if p.name == "aws" {
                    format!("cognito-idp.{region}.amazonaws.com")
                } else {
                    format!("cognito-idp.{region}.{}", p.dual_stack_dns_suffix)
                }
            }
            (false, false) => format!("cognito-idp.{region}.{}", p.dns_suffix),
        };
        Endpoint::new(format!("https://{host}/"), host)
    }
}

/// A DNS host label: 1 to 63 ASCII letters, digits or `-`, not starting or ending with `-`.
fn is_host_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A resolved endpoint: the URL the request is sent to, and its `Host` header.
///
/// The URI and header value are parsed once here, not on every request.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    host: String,
    uri: Uri,
    host_header: HeaderValue,
}

impl Endpoint {
    fn new(url: String, host: String) -> Result<Self, EndpointError> {
        let invalid = || EndpointError::InvalidEndpointUrl {
            reason: "not a valid absolute URL",
        };
        Ok(Self {
            uri: url.parse().map_err(|_| invalid())?,
            host_header: HeaderValue::from_str(&host).map_err(|_| invalid())?,
            url,
            host,
        })
    }

    /// The URL as a parsed [`Uri`].
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// Validates a custom endpoint URL and makes it the endpoint.
    ///
    /// The URL must be absolute `http` or `https`, with a host, without user-info (credentials
    /// in a URL would end up in logs), query or fragment. A path is kept as a prefix of the
    /// request path `/`.
    pub fn custom(url: &str) -> Result<Self, EndpointError> {
        let invalid = |reason| EndpointError::InvalidEndpointUrl { reason };
        if url.contains('#') {
            return Err(invalid("a fragment is not allowed"));
        }
        let uri: Uri = url
            .parse()
            .map_err(|_| invalid("not a valid absolute URL"))?;
        let scheme = uri
            .scheme()
            .ok_or_else(|| invalid("the URL must start with http:// or https://"))?;
        if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
            return Err(invalid("the URL must start with http:// or https://"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("the URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user-info (user:password@) is not allowed"));
        }
        if authority.host().is_empty() {
            return Err(invalid("the URL has no host"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query string is not allowed"));
        }
        let path = uri.path().trim_end_matches('/');
        let host = authority.as_str().to_owned();
        Self::new(format!("{scheme}://{host}{path}/"), host)
    }

    /// The full URL the request is posted to, ending in `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `Host` header value (host and, if given, port).
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Endpoint").field(&self.url).finish()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(region: &str, fips: bool, ds: bool) -> Result<String, EndpointError> {
        EndpointConfig::new()
            .region(region)
            .use_fips(fips)
            .use_dual_stack(ds)
            .resolve()
            .map(|e| e.url().trim_end_matches('/').to_owned())
    }

    /// Every row of the URL table in docs/protocol.md §1.2.
    #[test]
    fn every_row_of_the_url_table_resolves_as_documented() {
        let rows: &[(&str, bool, bool, &str)] = &[
            (
                "us-east-1",
                false,
                false,
                "https://cognito-idp.us-east-1.amazonaws.com",
            ),
            (
                "us-east-1",
                false,
                true,
                "https://cognito-idp.us-east-1.amazonaws.com",
            ),
            (
                "us-east-1",
                true,
                false,
                "https://cognito-idp-fips.us-east-1.amazonaws.com",
            ),
            (
                "us-east-1",
                true,
                true,
                "https://cognito-idp-fips.us-east-1.amazonaws.com",
            ),
            (
                "us-east-2",
                true,
                true,
                "https://cognito-idp-fips.us-east-2.amazonaws.com",
            ),
            (
                "us-west-1",
                true,
                true,
                "https://cognito-idp-fips.us-west-1.amazonaws.com",
            ),
            (
                "us-west-2",
                true,
                true,
                "https://cognito-idp-fips.us-west-2.amazonaws.com",
            ),
            (
                "eu-west-1",
                true,
                true,
                "https://cognito-idp-fips.eu-west-1.api.aws",
            ),
            (
                "eu-west-1",
                true,
                false,
                "https://cognito-idp-fips.eu-west-1.amazonaws.com",
            ),
            (
                "cn-north-1",
                false,
                false,
                "https://cognito-idp.cn-north-1.amazonaws.com.cn",
            ),
            (
                "cn-north-1",
                false,
                true,
                "https://cognito-idp.cn-north-1.api.amazonwebservices.com.cn",
            ),
            (
                "cn-north-1",
                true,
                false,
                "https://cognito-idp-fips.cn-north-1.amazonaws.com.cn",
            ),
            (
                "cn-north-1",
                true,
                true,
                "https://cognito-idp-fips.cn-north-1.api.amazonwebservices.com.cn",
            ),
            (
                "us-gov-east-1",
                false,
                false,
                "https://cognito-idp.us-gov-east-1.amazonaws.com",
            ),
            (
                "us-gov-east-1",
                false,
                true,
                "https://cognito-idp.us-gov-east-1.api.aws",
            ),
            (
                "us-gov-east-1",
                true,
                false,
                "https://cognito-idp-fips.us-gov-east-1.amazonaws.com",
            ),
            (
                "us-gov-east-1",
                true,
                true,
                "https://cognito-idp-fips.us-gov-east-1.api.aws",
            ),
            (
                "us-gov-west-1",
                true,
                false,
                "https://cognito-idp-fips.us-gov-west-1.amazonaws.com",
            ),
            (
                "us-iso-east-1",
                false,
                false,
                "https://cognito-idp.us-iso-east-1.c2s.ic.gov",
            ),
            (
                "us-iso-east-1",
                true,
                false,
                "https://cognito-idp-fips.us-iso-east-1.c2s.ic.gov",
            ),
            (
                "us-iso-east-1",
                false,
                true,
                "https://cognito-idp.us-iso-east-1.api.aws.ic.gov",
            ),
            (
                "us-isob-east-1",
                false,
                false,
                "https://cognito-idp.us-isob-east-1.sc2s.sgov.gov",
            ),
            (
                "us-isob-east-1",
                true,
                false,
                "https://cognito-idp-fips.us-isob-east-1.sc2s.sgov.gov",
            ),
            (
                "eu-isoe-west-1",
                false,
                false,
                "https://cognito-idp.eu-isoe-west-1.cloud.adc-e.uk",
            ),
            (
                "us-isof-south-1",
                false,
                false,
                "https://cognito-idp.us-isof-south-1.csp.hci.ic.gov",
            ),
            (
                "eusc-de-east-1",
                false,
                false,
                "https://cognito-idp.eusc-de-east-1.amazonaws.eu",
            ),
        ];
        for (region, fips, ds, expected) in rows {
            assert_eq!(
                url(region, *fips, *ds).as_deref(),
                Ok(*expected),
                "{region} fips={fips} dualstack={ds}"
            );
        }
    }

    /// The regions the model's endpoint tests list with default endpoints.
    #[test]
    fn every_region_of_the_model_tests_resolves_under_amazonaws_com() {
        for region in [
            "af-south-1",
            "ap-east-1",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ] {
            assert_eq!(
                url(region, false, false),
                Ok(format!("https://cognito-idp.{region}.amazonaws.com"))
            );
        }
    }

    #[test]
    fn custom_endpoint_is_used_unchanged_without_region() {
        let ep = EndpointConfig::new()
            .endpoint_url("https://example.com")
            .resolve()
            .expect("valid");
        assert_eq!(ep.url(), "https://example.com/");
        assert_eq!(ep.host(), "example.com");
    }

    #[test]
    fn custom_endpoint_wins_over_region() {
        let ep = EndpointConfig::new()
            .region("eu-west-1")
            .endpoint_url("http://127.0.0.1:8080/prefix/")
            .resolve()
            .expect("valid");
        assert_eq!(ep.url(), "http://127.0.0.1:8080/prefix/");
        assert_eq!(ep.host(), "127.0.0.1:8080");
    }

    #[test]
    fn custom_endpoint_with_fips_or_dual_stack_is_an_error() {
        let base = EndpointConfig::new().endpoint_url("https://example.com");
        assert_eq!(
            base.clone().use_fips(true).resolve(),
            Err(EndpointError::FipsWithCustomEndpoint)
        );
        assert_eq!(
            base.use_dual_stack(true).resolve(),
            Err(EndpointError::DualStackWithCustomEndpoint)
        );
    }

    #[test]
    fn missing_region_is_an_error() {
        for (f, d) in [(false, false), (true, false), (false, true), (true, true)] {
            assert_eq!(
                EndpointConfig::new()
                    .use_fips(f)
                    .use_dual_stack(d)
                    .resolve(),
                Err(EndpointError::MissingRegion)
            );
        }
    }

    #[test]
    fn a_region_that_is_not_a_host_label_is_rejected() {
        for region in [
            "us-east-1.evil.example/x",
            "us-east-1@evil.example",
            "evil.example:443",
            "us-east-1/",
            "us east 1",
            "us-east-1\n",
            "",
            "-us-east-1",
            "us-east-1-",
            "us_east_1",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(
                    url(region, false, false),
                    Err(EndpointError::InvalidRegion { .. })
                ),
                "{region:?} must be rejected"
            );
        }
    }

    #[test]
    fn custom_endpoint_urls_are_checked() {
        for (bad, reason) in [
            (
                "ftp://example.com",
                "the URL must start with http:// or https://",
            ),
            ("example.com", "the URL must start with http:// or https://"),
            (
                "https://user:pw@example.com",
                "user-info (user:password@) is not allowed",
            ),
            ("https://example.com/?a=b", "a query string is not allowed"),
            ("https://example.com/#x", "a fragment is not allowed"),
            ("not a url", "not a valid absolute URL"),
        ] {
            let e = Endpoint::custom(bad).expect_err(bad);
            assert_eq!(e, EndpointError::InvalidEndpointUrl { reason }, "{bad}");
            assert!(!e.to_string().contains("pw"));
        }
    }

    #[test]
    fn from_lookup_follows_sdk_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let cfg = EndpointConfig::from_lookup(env(&[
            ("AWS_REGION", "eu-west-2"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ]))
        .expect("valid");
        assert_eq!(cfg.get_region(), Some("eu-west-2"));

        let cfg = EndpointConfig::from_lookup(env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            (
                "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
                "http://127.0.0.1:2",
            ),
        ]))
        .expect("valid");
        assert_eq!(cfg.resolve().expect("valid").url(), "http://127.0.0.1:2/");

        let cfg = EndpointConfig::from_lookup(env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ("AWS_USE_DUALSTACK_ENDPOINT", "True"),
        ]))
        .expect("valid");
        assert_eq!(
            cfg.resolve().expect("valid").url(),
            "https://cognito-idp.eu-west-1.amazonaws.com/"
        );

        assert_eq!(
            EndpointConfig::from_lookup(env(&[("AWS_USE_FIPS_ENDPOINT", "yes")])),
            Err(EndpointError::InvalidEnvVar {
                name: "AWS_USE_FIPS_ENDPOINT",
                expected: "true or false"
            })
        );
        assert_eq!(
            EndpointConfig::from_lookup(env(&[]))
                .expect("valid")
                .resolve(),
            Err(EndpointError::MissingRegion)
        );
    }
}
