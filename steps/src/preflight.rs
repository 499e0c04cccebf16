//! What a run needs, checked before anything boots: the ISO given with
//! `--iso`, and every vm-config the selected scenarios boot (named by
//! `Given the computer boots from "NAME"`, or by the recipe of a
//! checkpoint they start from) must load, and its boot medium exist. A run
//! that would fail at its first boot, maybe an hour into a nightly job,
//! fails here at once instead, with every problem listed and exit code 2.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use cucumber::gherkin;

use crate::selection::{display_path, InputError};
use crate::world::Settings;

static BOOTS_FROM: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r#"^the computer boots from "([^"]*)"$"#).expect("regex"));
static AT_CHECKPOINT: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r#"^a computer at checkpoint "([^"]*)"$"#).expect("regex"));

/// Check what the scenarios of `features` will boot; see the module docs.
pub fn check(settings: &Settings, features: &[gherkin::Feature]) -> anyhow::Result<()> {
    // Problem -> the first scenario that has it.
    let mut problems: BTreeMap<String, String> = BTreeMap::new();
    if let Some(iso) = &settings.iso {
        if !iso.is_file() {
            problems.insert(
                format!("--iso {}: no such file", iso.display()),
                String::new(),
            );
        }
    }
    for (feature, rule, scenario) in scenarios(features) {
        let at = format!(
            "{}:{}",
            feature
                .path
                .as_deref()
                .map(display_path)
                .unwrap_or_default(),
            scenario.position.line
        );
        let steps = feature
            .background
            .iter()
            .chain(rule.and_then(|r| r.background.as_ref()))
            .flat_map(|b| &b.steps)
            .chain(&scenario.steps);
        for step in steps {
            for problem in step_problems(settings, &step.value) {
                problems.entry(problem).or_insert_with(|| at.clone());
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let text = problems
        .into_iter()
        .map(|(problem, at)| match at.as_str() {
            "" => problem,
            _ => format!("{problem} (needed by {at})"),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Err(anyhow::Error::new(InputError(format!(
        "the run cannot start:\n{text}"
    ))))
}

fn scenarios(
    features: &[gherkin::Feature],
) -> impl Iterator<
    Item = (
        &gherkin::Feature,
        Option<&gherkin::Rule>,
        &gherkin::Scenario,
    ),
> {
    features.iter().flat_map(|f| {
        f.scenarios.iter().map(move |s| (f, None, s)).chain(
            f.rules
                .iter()
                .flat_map(move |r| r.scenarios.iter().map(move |s| (f, Some(r), s))),
        )
    })
}

/// What is wrong with what the step `text` boots, if it boots anything.
fn step_problems(settings: &Settings, text: &str) -> Vec<String> {
    let mut configs = Vec::new();
    if let Some(c) = BOOTS_FROM.captures(text) {
        configs.push(c[1].to_owned());
    }
    if let Some(c) = AT_CHECKPOINT.captures(text) {
        let recipes = crate::checkpoints::recipes();
        let named = crate::checkpoints::resolve_alias(&c[1], settings.kind);
        let mut name = Some(named.to_owned());
        while let Some(n) = name.take() {
            match recipes.iter().find(|r| r.name == n) {
                Some(recipe) => {
                    configs.push(recipe.config.to_owned());
                    name = recipe.parent.map(str::to_owned);
                }
                None => {
                    return vec![format!(
                        "no checkpoint named `{n}`; known: {}",
                        recipes
                            .iter()
                            .map(|r| r.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )]
                }
            }
        }
    }
    configs
        .into_iter()
        .filter_map(|name| config_problem(settings, &name))
        .collect()
}

fn config_problem(settings: &Settings, name: &str) -> Option<String> {
    let config = match settings.vm_config_for(name) {
        Ok(config) => config,
        Err(e) => return Some(format!("vm-config `{name}`: {:#}", anyhow::Error::new(e))),
    };
    let medium = config.boot.as_ref()?.path().to_owned();
    if medium.exists() {
        return None;
    }
    let from = match (&settings.vm_config, &settings.iso) {
        (_, Some(_)) => "--iso".to_owned(),
        (Some(path), None) => path.display().to_string(),
        (None, None) => {
            let file = settings.vm_configs.join(format!("{name}.toml"));
            if file.exists() {
                file.display().to_string()
            } else {
                format!("the step's `{name}`")
            }
        }
    };
    Some(format!(
        "the boot medium {} of vm-config `{name}` (from {from}) does not exist",
        medium.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &std::path::Path) -> Settings {
        Settings {
            vm_configs: dir.to_owned(),
            ..Settings::for_checkout(dir)
        }
    }

    #[test]
    fn a_missing_iso_is_found_before_the_boot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.toml"),
            "name = \"mine\"\n[boot]\niso = \"missing.iso\"\n",
        )
        .unwrap();
        let s = settings(dir.path());
        let problems = step_problems(&s, "the computer boots from \"mine\"");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("missing.iso") && problems[0].contains("mine.toml"),
            "{problems:?}"
        );
        std::fs::write(dir.path().join("missing.iso"), "").unwrap();
        assert_eq!(
            step_problems(&s, "the computer boots from \"mine\""),
            Vec::<String>::new()
        );
        assert!(step_problems(&s, "I type \"x\"").is_empty());
    }

    #[test]
    fn checkpoints_are_followed_to_their_vm_config() {
        let dir = tempfile::tempdir().unwrap();
        let problems = step_problems(
            &settings(dir.path()),
            "a computer at checkpoint \"tor-ready\"",
        );
        // tor-ready and its parent lab-greeter boot derivative-lab, which
        // this empty folder does not have: a path named so is looked for.
        assert!(
            problems.iter().any(|p| p.contains("derivative-lab")),
            "{problems:?}"
        );
        let problems = step_problems(&settings(dir.path()), "a computer at checkpoint \"nope\"");
        assert!(
            problems[0].contains("no checkpoint named `nope`"),
            "{problems:?}"
        );
    }
}
