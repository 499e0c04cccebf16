//! `--shard I/N`: split a suite over N machines deterministically. Scenarios
//! that start from the same checkpoint stay together (the checkpoint is
//! reached once per shard that needs it); the rest are grouped by feature
//! file. Groups go, largest first, to the least loaded shard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cucumber::gherkin;

/// Which shard this run is: `index` of `count`, 1-based as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N (e.g. 2/4)"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("`{i}` in `{s}` is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("`{n}` in `{s}` is not a number"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard `{s}`: I must be in 1..=N and N at least 1"));
        }
        Ok(Shard { index, count })
    }
}

const CHECKPOINT_STEP: &str = "a computer at checkpoint \"";

/// The checkpoint a list of steps starts from, if any.
fn checkpoint_of<'a>(steps: impl IntoIterator<Item = &'a gherkin::Step>) -> Option<String> {
    steps.into_iter().find_map(|s| {
        let rest = s.value.split_once(CHECKPOINT_STEP)?.1;
        Some(rest.split('"').next()?.to_owned())
    })
}

/// The group a scenario belongs to.
pub fn group_of(
    feature: &gherkin::Feature,
    rule: Option<&gherkin::Rule>,
    scenario: &gherkin::Scenario,
) -> String {
    let background = feature
        .background
        .iter()
        .chain(rule.and_then(|r| r.background.as_ref()))
        .flat_map(|b| b.steps.iter());
    match checkpoint_of(background.chain(scenario.steps.iter())) {
        Some(checkpoint) => format!("checkpoint:{checkpoint}"),
        None => format!(
            "file:{}",
            feature
                .path
                .as_deref()
                .and_then(|p| std::fs::canonicalize(p).ok())
                .unwrap_or_default()
                .display()
        ),
    }
}

/// Every `.feature` file below `dir`, sorted.
pub fn feature_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "feature") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Assign every group of the suite in `dir` to a shard (0-based).
pub fn plan(dir: &Path, count: usize) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for path in feature_files(dir) {
        let feature = gherkin::Feature::parse_path(&path, gherkin::GherkinEnv::default())
            .map_err(|e| anyhow::anyhow!("cannot parse {}: {e}", path.display()))?;
        for sc in &feature.scenarios {
            *sizes.entry(group_of(&feature, None, sc)).or_default() += 1;
        }
        for rule in &feature.rules {
            for sc in &rule.scenarios {
                *sizes.entry(group_of(&feature, Some(rule), sc)).or_default() += 1;
            }
        }
    }
    Ok(plan_groups(sizes, count))
}

/// Assign groups (name -> number of scenarios) to `count` shards
/// (0-based): largest first, each to the least loaded shard. A shard stays
/// empty only when there are fewer groups than shards.
pub fn plan_groups(sizes: BTreeMap<String, usize>, count: usize) -> BTreeMap<String, usize> {
    let mut groups: Vec<(String, usize)> = sizes.into_iter().collect();
    // Largest first; equal sizes in name order, so every machine agrees.
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut load = vec![0usize; count.max(1)];
    let mut plan = BTreeMap::new();
    for (group, size) in groups {
        let shard = (0..load.len()).min_by_key(|&i| (load[i], i)).unwrap_or(0);
        // An empty group still takes a place, so every shard gets one
        // while groups last.
        load[shard] += size.max(1);
        plan.insert(group, shard);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_shard() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert!("0/4".parse::<Shard>().is_err());
        assert!("5/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn checkpoint_groups_stay_together_and_cover_everything() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.feature"),
            "Feature: A\n  Scenario: a1\n    Given a computer at checkpoint \"tor-ready\"\n  Scenario: a2\n    Given a computer at checkpoint \"tor-ready\"\n  Scenario: a3\n    Given a computer at checkpoint \"greeter\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.feature"),
            "Feature: B\n  Background:\n    Given a computer at checkpoint \"greeter\"\n  Scenario: b1\n    When x\n  Scenario: b2\n    When y\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("c.feature"),
            "Feature: C\n  Scenario: c1\n    When z\n",
        )
        .unwrap();
        let plan = plan(dir.path(), 2).unwrap();
        assert_eq!(plan.len(), 3, "{plan:?}");
        // greeter (3 scenarios) and tor-ready (2) + c (1) balance 3/3.
        assert_ne!(plan["checkpoint:greeter"], plan["checkpoint:tor-ready"]);
        let again = super::plan(dir.path(), 2).unwrap();
        assert_eq!(plan, again, "deterministic");
    }
}
