//! The environment's variables, read by name: every error names the variable, and a blank value
//! means the default.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};

pub(super) struct Env(BTreeMap<String, String>);

impl Env {
    pub(super) fn new(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(vars.into_iter().collect())
    }

    pub(super) fn get<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.0.get(name).map(|v| v.trim()) {
            None | Some("") => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("invalid value {raw:?} for {name}")),
        }
    }

    pub(super) fn positive<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr + PartialOrd + Default + Display,
        T::Err: Display,
    {
        let value = self.get(name, default)?;
        if value <= T::default() {
            bail!("{name} must be greater than zero, not {value}");
        }
        Ok(value)
    }

    /// The trimmed value of `name`, or `None` when it is unset or blank.
    pub(super) fn optional(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// A comma-separated list: `None` when `name` is unset, empty when it is set but blank. An
    /// empty item (`a,,b`) is an error.
    pub(super) fn list(&self, name: &str) -> anyhow::Result<Option<Vec<String>>> {
        let Some(raw) = self.0.get(name).map(|v| v.trim()) else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let items: Vec<String> = raw.split(',').map(|item| item.trim().to_owned()).collect();
        if items.iter().any(String::is_empty) {
            bail!("{name} must be a comma-separated list without empty items");
        }
        Ok(Some(items))
    }

    pub(super) fn millis(&self, name: &str, default: u64) -> anyhow::Result<Duration> {
        self.positive(name, default).map(Duration::from_millis)
    }

    /// Every variable, name and raw value, in name order: for readers of a whole family of
    /// variables rather than of one name.
    pub(super) fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}
