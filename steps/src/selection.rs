//! Which scenarios a run runs, decided before anything boots.
//!
//! The features are the files and folders named on the command line, taken
//! as given wherever they are (or the features folder when none is named),
//! each `FILE:LINE` narrowing its file to the scenarios at those lines.
//! `--tags`, `--name` and `--shard` then narrow that set, all of them
//! together. Every file is parsed here, so a malformed feature fails the
//! run before a VM starts, and a filter that leaves nothing is an error
//! that names the filter, the files read and what the filter could have
//! meant: a typo in a nightly job's tag must not make a green run that
//! tested nothing. The one empty selection that is not an error is a shard
//! with nothing to do because the suite has fewer checkpoint groups than
//! shards.
//!
//! `FILE:LINE` means any line of a scenario: its tags, its `Scenario:`
//! line, a step, a docstring or table of a step; in a Scenario Outline an
//! example row selects that example alone, and an `Examples:` block's
//! keyword, tags or header selects that block's examples. A line of a
//! `Background` or of the feature's header selects the whole feature (of a
//! `Rule`'s, the whole rule). Blank lines between scenarios select nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cucumber::feature::Ext as _;
use cucumber::gherkin;
use cucumber::tag::Ext as _;

use crate::shard::{self, Shard};

/// An error in what the user asked for (a filter, a path, a feature file,
/// a missing ISO): the run stops before anything boots and exits 2.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

fn input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InputError(message.into()))
}

/// What the command line asks to run.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Files, folders and `FILE:LINE`s, as typed.
    pub targets: Vec<String>,
    /// The folder read when no target is named.
    pub features_dir: PathBuf,
    pub tags: Option<String>,
    pub name: Option<String>,
    pub shard: Option<Shard>,
    /// The derivative's kind: scenarios tagged for other kinds only
    /// (`@kind-vpn`, ...) are left out.
    pub kind: harness::derivative::Kind,
}

/// One scenario the run will run (an example of an outline counts as one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The feature file, canonical.
    pub file: PathBuf,
    /// The line that names it alone: its `Scenario:` line, or an
    /// example's row.
    pub line: usize,
    /// The line cucumber knows it by (an example's differs from its row
    /// when the table has blank or comment lines).
    pub run_line: usize,
    pub feature: String,
    pub name: String,
}

impl Chosen {
    /// `FILE:LINE` as a user would type it from the current folder.
    pub fn target(&self) -> String {
        format!("{}:{}", display_path(&self.file), self.line)
    }
}

/// The outcome of a selection.
#[derive(Debug)]
pub enum Selection {
    /// The features to run, holding only the chosen scenarios, and the
    /// scenarios in run order.
    Run {
        features: Vec<gherkin::Feature>,
        chosen: Vec<Chosen>,
    },
    /// `--shard I/N` with nothing to do: fewer groups than shards.
    EmptyShard(String),
}

/// A parsed feature file with what it takes to map lines to scenarios.
struct Parsed {
    /// Canonical path.
    path: PathBuf,
    /// Examples expanded, as cucumber runs it.
    feature: gherkin::Feature,
    lines: Lines,
}

/// Decide what `request` runs: see the module docs.
pub fn select(request: &Request) -> anyhow::Result<Selection> {
    let (files, lines_wanted) = files_of(request)?;
    let mut parsed = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        match parse(file) {
            Ok(p) => parsed.push(p),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(input(problems.join("\n")));
    }
    let read = files.iter().map(|f| display_path(f)).collect::<Vec<_>>();
    let read_list = read.join(", ");

    // Each filter in turn, so an empty result names the one that emptied it.
    let mut chosen: Vec<(usize, Key)> = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        let wanted = lines_wanted.get(&p.path);
        for key in p.all_keys() {
            let keep = match wanted {
                None => true,
                Some(lines) => lines.iter().any(|&l| p.lines.selects(l, &key)),
            };
            if keep {
                chosen.push((i, key));
            }
        }
    }
    for (path, lines) in &lines_wanted {
        let p = parsed
            .iter()
            .find(|p| &p.path == path)
            .expect("every file with lines was parsed");
        for &line in lines {
            if !p.all_keys().iter().any(|k| p.lines.selects(line, k)) {
                return Err(input(format!(
                    "{}:{line} is not a line of any scenario{}; the nearest: {}",
                    display_path(path),
                    match p.lines.count {
                        n if line > n => format!(" (the file has {n} lines)"),
                        _ => String::new(),
                    },
                    p.nearest(line)
                )));
            }
        }
    }
    if chosen.is_empty() {
        return Err(input(format!(
            "no scenario in the feature files read ({read_list})"
        )));
    }
    let mut described = match &request.targets[..] {
        [] => format!("the {} scenarios in {read_list}", chosen.len()),
        targets => format!(
            "the {} scenarios selected by {}",
            chosen.len(),
            targets.join(" ")
        ),
    };
    if let Some(tags) = &request.tags {
        let expr: gherkin::tagexpr::TagOperation = tags
            .parse()
            .map_err(|e| input(format!("--tags `{tags}` is not a tag expression: {e}")))?;
        let before = chosen.clone();
        chosen.retain(|(i, key)| {
            let p = &parsed[*i];
            let (rule, scenario) = p.scenario(key);
            expr.eval(
                p.feature
                    .tags
                    .iter()
                    .chain(rule.iter().flat_map(|r| &r.tags))
                    .chain(&scenario.tags),
            )
        });
        if chosen.is_empty() {
            let known: BTreeSet<String> = before
                .iter()
                .flat_map(|(i, key)| {
                    let p = &parsed[*i];
                    let (rule, scenario) = p.scenario(key);
                    p.feature
                        .tags
                        .iter()
                        .chain(rule.iter().flat_map(|r| &r.tags))
                        .chain(&scenario.tags)
                        .map(|t| format!("@{t}"))
                        .collect::<Vec<_>>()
                })
                .collect();
            return Err(input(format!(
                "--tags `{tags}` matches none of {described}; their tags: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.into_iter().collect::<Vec<_>>().join(" ")
                }
            )));
        }
        described = format!(
            "the {} scenarios --tags `{tags}` selects of {described}",
            chosen.len()
        );
    }
    {
        use harness::derivative::kind;
        let tags_of = |(i, key): &(usize, Key)| {
            let p = &parsed[*i];
            let (rule, scenario) = p.scenario(key);
            let rule_tags = rule.map(|r| r.tags.clone()).unwrap_or_default();
            (p.feature.tags.clone(), rule_tags, scenario.tags.clone())
        };
        for c in &chosen {
            let (f, r, sc) = tags_of(c);
            let bad: Vec<String> = [f, r, sc]
                .iter()
                .flat_map(|t| kind::unknown_kind_tags(t))
                .collect();
            if !bad.is_empty() {
                let p = &parsed[c.0];
                return Err(input(format!(
                    "{}: `{}` is tagged {}, which names no kind of derivative (tor, bridges, vpn)",
                    display_path(&p.path),
                    p.scenario(&c.1).1.name,
                    bad.iter()
                        .map(|t| format!("@{t}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )));
            }
        }
        let before = chosen.len();
        chosen.retain(|c| {
            let (f, r, sc) = tags_of(c);
            kind::applies(&[&f, &r, &sc], request.kind)
        });
        if chosen.is_empty() {
            return Err(input(format!(
                "none of {described} applies to a derivative of kind {} ({before} are tagged for other kinds); \
                 say the kind with --kind if it is not {}",
                request.kind, request.kind
            )));
        }
    }
    if let Some(name) = &request.name {
        let re = regex::Regex::new(name)
            .map_err(|e| input(format!("--name `{name}` is not a valid regex: {e}")))?;
        let before = chosen.clone();
        chosen.retain(|(i, key)| re.is_match(&parsed[*i].scenario(key).1.name));
        if chosen.is_empty() {
            let names: BTreeSet<&str> = before
                .iter()
                .map(|(i, key)| parsed[*i].scenario(key).1.name.as_str())
                .collect();
            return Err(input(format!(
                "--name `{name}` (a regex) matches none of {described}; their names: {}",
                names.into_iter().collect::<Vec<_>>().join("; ")
            )));
        }
    }
    if let Some(shard) = request.shard {
        let group = |(i, key): &(usize, Key)| {
            let p = &parsed[*i];
            let (rule, scenario) = p.scenario(key);
            shard::group_of(&p.feature, rule, scenario)
        };
        let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
        for c in &chosen {
            *sizes.entry(group(c)).or_default() += 1;
        }
        let (groups, total) = (sizes.len(), chosen.len());
        let plan = shard::plan_groups(sizes, shard.count);
        chosen.retain(|c| plan.get(&group(c)) == Some(&(shard.index - 1)));
        if chosen.is_empty() {
            return Ok(Selection::EmptyShard(format!(
                "shard {}/{} has nothing to run: the {} selected scenarios form {groups} \
                 group(s) (scenarios that share a checkpoint, or else a feature file, stay \
                 together), fewer than {} shards",
                shard.index, shard.count, total, shard.count
            )));
        }
    }
    Ok(finish(parsed, chosen))
}

/// Prune the features to the chosen scenarios, in file order.
fn finish(parsed: Vec<Parsed>, chosen: Vec<(usize, Key)>) -> Selection {
    let keep: BTreeSet<(usize, Key)> = chosen.into_iter().collect();
    let mut features = Vec::new();
    let mut list = Vec::new();
    for (i, p) in parsed.into_iter().enumerate() {
        let mut feature = p.feature;
        let kept = |key: Key| keep.contains(&(i, key));
        let record = |scenario: &gherkin::Scenario, feature_name: &str| Chosen {
            file: p.path.clone(),
            line: p
                .lines
                .source_line
                .get(&scenario.position.line)
                .copied()
                .unwrap_or(scenario.position.line),
            run_line: scenario.position.line,
            feature: feature_name.to_owned(),
            name: scenario.name.clone(),
        };
        let name = feature.name.clone();
        feature
            .scenarios
            .retain(|s| kept(Key::new(None, s.position.line)));
        for s in &feature.scenarios {
            list.push(record(s, &name));
        }
        for (r, rule) in feature.rules.iter_mut().enumerate() {
            rule.scenarios
                .retain(|s| kept(Key::new(Some(r), s.position.line)));
            for s in &rule.scenarios {
                list.push(record(s, &name));
            }
        }
        feature.rules.retain(|r| !r.scenarios.is_empty());
        if !feature.scenarios.is_empty() || !feature.rules.is_empty() {
            features.push(feature);
        }
    }
    Selection::Run {
        features,
        chosen: list,
    }
}

/// A scenario of a parsed feature: its rule (index) and its line after
/// the outline's expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    rule: Option<usize>,
    line: usize,
}

impl Key {
    fn new(rule: Option<usize>, line: usize) -> Key {
        Key { rule, line }
    }
}

impl Parsed {
    fn all_keys(&self) -> Vec<Key> {
        let top = self
            .feature
            .scenarios
            .iter()
            .map(|s| Key::new(None, s.position.line));
        let ruled = self.feature.rules.iter().enumerate().flat_map(|(r, rule)| {
            rule.scenarios
                .iter()
                .map(move |s| Key::new(Some(r), s.position.line))
        });
        top.chain(ruled).collect()
    }

    fn scenario(&self, key: &Key) -> (Option<&gherkin::Rule>, &gherkin::Scenario) {
        let rule = key.rule.map(|r| &self.feature.rules[r]);
        let scenarios = rule.map_or(&self.feature.scenarios, |r| &r.scenarios);
        let scenario = scenarios
            .iter()
            .find(|s| s.position.line == key.line)
            .expect("keys come from this feature");
        (rule, scenario)
    }

    /// The scenarios closest to `line`, with their lines, for an error.
    fn nearest(&self, line: usize) -> String {
        let mut blocks: Vec<&Block> = self
            .lines
            .blocks
            .iter()
            .filter(|b| matches!(b.what, What::Scenario { .. }))
            .collect();
        if blocks.is_empty() {
            return "none: the feature has no scenario".into();
        }
        blocks.sort_by_key(|b| {
            if line < b.start {
                b.start - line
            } else {
                line.saturating_sub(b.end)
            }
        });
        blocks
            .iter()
            .take(2)
            .map(|b| {
                let What::Scenario { ref name, keyword } = b.what else {
                    unreachable!("filtered above")
                };
                format!(
                    "{}:{keyword} \"{name}\" (lines {}-{})",
                    display_path(&self.path),
                    b.start,
                    b.end
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where each scenario, background and rule sits in a feature file.
#[derive(Debug, Default)]
struct Lines {
    /// Lines in the file.
    count: usize,
    blocks: Vec<Block>,
    /// An expanded example's run line -> its row's line.
    source_line: BTreeMap<usize, usize>,
}

#[derive(Debug)]
struct Block {
    start: usize,
    end: usize,
    /// Which scenarios a line of this block selects.
    selects: BTreeSet<Key>,
    what: What,
    /// An outline's example rows and `Examples:` blocks, each with the
    /// scenarios a line in it selects.
    parts: Vec<(usize, usize, BTreeSet<Key>)>,
}

#[derive(Debug)]
enum What {
    Header,
    Background,
    Rule,
    Scenario { name: String, keyword: usize },
}

impl Lines {
    fn selects(&self, line: usize, key: &Key) -> bool {
        let Some(block) = self
            .blocks
            .iter()
            .find(|b| b.start <= line && line <= b.end)
        else {
            return false;
        };
        // The narrowest part of an outline that holds the line.
        let part = block
            .parts
            .iter()
            .filter(|(s, e, _)| *s <= line && line <= *e)
            .min_by_key(|(s, e, _)| e - s);
        match part {
            Some((_, _, keys)) => keys.contains(key),
            None => block.selects.contains(key),
        }
    }
}

/// The first line of the tags above the keyword at `line` (1-based):
/// tag lines, with comments among them, but not the comments above them.
fn tags_start(text: &[&str], line: usize) -> usize {
    let mut start = line;
    while start > 1 {
        let above = text[start - 2].trim_start();
        if above.starts_with('@') || above.starts_with('#') {
            start -= 1;
        } else {
            break;
        }
    }
    while start < line && text[start - 1].trim_start().starts_with('#') {
        start += 1;
    }
    start
}

fn is_content(text: &[&str], line: usize) -> bool {
    let t = text[line - 1].trim();
    !t.is_empty() && !t.starts_with('#')
}

/// Map lines to scenarios; `raw` is the feature before expansion,
/// `expanded` after.
fn map_lines(text: &str, raw: &gherkin::Feature, expanded: &gherkin::Feature) -> Lines {
    let text: Vec<&str> = text.lines().collect();
    let count = text.len();
    let mut source_line = BTreeMap::new();
    let all_in = |rule: Option<usize>| -> BTreeSet<Key> {
        let scenarios = match rule {
            None => &expanded.scenarios,
            Some(r) => &expanded.rules[r].scenarios,
        };
        scenarios
            .iter()
            .map(|s| Key::new(rule, s.position.line))
            .collect()
    };
    let whole_feature: BTreeSet<Key> = (0..expanded.rules.len())
        .map(Some)
        .chain([None])
        .flat_map(all_in)
        .collect();
    let mut blocks = Vec::new();
    if let Some(bg) = &raw.background {
        blocks.push(Block {
            start: bg.position.line,
            end: bg.position.line,
            selects: whole_feature.clone(),
            what: What::Background,
            parts: vec![],
        });
    }
    let mut scenario_block =
        |s: &gherkin::Scenario, rule: Option<usize>, blocks: &mut Vec<Block>| {
            let mut keys = BTreeSet::new();
            let mut parts = Vec::new();
            if s.examples.is_empty() {
                keys.insert(Key::new(rule, s.position.line));
            }
            for ex in &s.examples {
                let mut block_keys = BTreeSet::new();
                let Some(table) = &ex.table else { continue };
                let rows = table.rows.len().saturating_sub(1);
                // Data rows: the `|` lines after the header row.
                let mut row_lines = Vec::new();
                let mut l = table.position.line + 1;
                while row_lines.len() < rows && l <= count {
                    let t = text[l - 1].trim_start();
                    if t.starts_with('|') {
                        row_lines.push(l);
                    } else if !(t.is_empty() || t.starts_with('#')) {
                        break;
                    }
                    l += 1;
                }
                for id in 0..rows {
                    // Cucumber's line for the expanded example.
                    let run_line = ex.position.line + id + 2;
                    let key = Key::new(rule, run_line);
                    block_keys.insert(key);
                    let row = row_lines.get(id).copied().unwrap_or(run_line);
                    source_line.insert(run_line, row);
                    parts.push((row, row, BTreeSet::from([key])));
                }
                let end = row_lines.last().copied().unwrap_or(table.position.line);
                parts.push((tags_start(&text, ex.position.line), end, block_keys.clone()));
                keys.extend(block_keys);
            }
            blocks.push(Block {
                start: tags_start(&text, s.position.line),
                end: s.position.line,
                selects: keys,
                what: What::Scenario {
                    name: s.name.clone(),
                    keyword: s.position.line,
                },
                parts,
            });
        };
    for s in &raw.scenarios {
        scenario_block(s, None, &mut blocks);
    }
    for (r, rule) in raw.rules.iter().enumerate() {
        let whole_rule = all_in(Some(r));
        blocks.push(Block {
            start: tags_start(&text, rule.position.line),
            end: rule.position.line,
            selects: whole_rule.clone(),
            what: What::Rule,
            parts: vec![],
        });
        if let Some(bg) = &rule.background {
            blocks.push(Block {
                start: bg.position.line,
                end: bg.position.line,
                selects: whole_rule,
                what: What::Background,
                parts: vec![],
            });
        }
        for s in &rule.scenarios {
            scenario_block(s, Some(r), &mut blocks);
        }
    }
    blocks.sort_by_key(|b| b.start);
    // Each block runs to its last content line before the next one.
    let starts: Vec<usize> = blocks.iter().map(|b| b.start).skip(1).collect();
    for (b, next) in blocks
        .iter_mut()
        .zip(starts.into_iter().map(Some).chain([None]))
    {
        let mut end = next.map_or(count, |n| n - 1);
        while end > b.start && !is_content(&text, end) {
            end -= 1;
        }
        b.end = end.max(b.end);
    }
    // The header: everything before the first block.
    let first = blocks.first().map_or(count + 1, |b| b.start);
    if first > 1 {
        blocks.insert(
            0,
            Block {
                start: 1,
                end: first - 1,
                selects: whole_feature,
                what: What::Header,
                parts: vec![],
            },
        );
    }
    Lines {
        count,
        blocks,
        source_line,
    }
}

fn parse(path: &Path) -> Result<Parsed, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", display_path(path)))?;
    let mut raw = gherkin::Feature::parse(&text, gherkin::GherkinEnv::default())
        .map_err(|e| format!("{} is not a valid feature: {e}", display_path(path)))?;
    raw.path = Some(path.to_owned());
    let expanded = raw
        .clone()
        .expand_examples()
        .map_err(|e| format!("{} is not a valid feature: {e}", display_path(path)))?;
    let lines = map_lines(&text, &raw, &expanded);
    Ok(Parsed {
        path: path.to_owned(),
        feature: expanded,
        lines,
    })
}

type Files = (Vec<PathBuf>, BTreeMap<PathBuf, Vec<usize>>);

/// The feature files to read (canonical, sorted, each once) and the lines
/// asked for in some of them.
fn files_of(request: &Request) -> anyhow::Result<Files> {
    let mut files = BTreeSet::new();
    let mut lines: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    let mut whole = BTreeSet::new();
    let folder = |dir: &Path, files: &mut BTreeSet<PathBuf>| -> anyhow::Result<Vec<PathBuf>> {
        let found = shard::feature_files(dir);
        if found.is_empty() {
            return Err(input(format!("no .feature file in {}", display_path(dir))));
        }
        let found: Vec<PathBuf> = found
            .iter()
            .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()))
            .collect();
        files.extend(found.iter().cloned());
        Ok(found)
    };
    if request.targets.is_empty() {
        if !request.features_dir.is_dir() {
            return Err(input(format!(
                "the features folder {} does not exist (name feature files or folders, or give --features DIR)",
                display_path(&request.features_dir)
            )));
        }
        folder(&request.features_dir, &mut files)?;
        return Ok((files.into_iter().collect(), lines));
    }
    for target in &request.targets {
        let (path, line) = split_line(target)?;
        let canonical = std::fs::canonicalize(path).map_err(|_| {
            input(format!(
                "`{target}`: no such feature file or folder ({} does not exist)",
                path.display()
            ))
        })?;
        if canonical.is_dir() {
            if line.is_some() {
                return Err(input(format!(
                    "`{target}`: {} is a folder; a line number needs a feature file",
                    path.display()
                )));
            }
            whole.extend(folder(&canonical, &mut files)?);
            continue;
        }
        files.insert(canonical.clone());
        match line {
            Some(line) => lines.entry(canonical).or_default().push(line),
            None => {
                whole.insert(canonical);
            }
        }
    }
    // A file named whole and also with a line runs whole.
    lines.retain(|f, _| !whole.contains(f));
    Ok((files.into_iter().collect(), lines))
}

/// `FILE:LINE` -> (FILE, Some(LINE)); anything else is a path.
fn split_line(target: &str) -> anyhow::Result<(&Path, Option<usize>)> {
    match target.rsplit_once(':') {
        Some((file, line)) if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) => {
            let n: usize = line
                .parse()
                .map_err(|_| input(format!("`{target}`: {line} is not a line number")))?;
            if n == 0 {
                return Err(input(format!("`{target}`: lines count from 1")));
            }
            Ok((Path::new(file), Some(n)))
        }
        _ => Ok((Path::new(target), None)),
    }
}

/// `path` relative to the current folder when it is below it.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| std::fs::canonicalize(d).ok());
    match cwd.as_deref().and_then(|cwd| path.strip_prefix(cwd).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTLINE: &str = "\
@top
Feature: F
  A description.

  Background:
    Given a

  @one
  Scenario: first
    When b
    Then c

  # a comment
  Scenario Outline: second <x>
    When <x>

    Examples:
      | x |
      | p |

      | q |

  Rule: R
    Scenario: third
      When d
";

    fn keys_at(lines: &Lines, all: &[Key], line: usize) -> Vec<usize> {
        all.iter()
            .filter(|k| lines.selects(line, k))
            .map(|k| k.line)
            .collect()
    }

    #[test]
    fn any_line_of_a_scenario_selects_it() {
        let raw = gherkin::Feature::parse(OUTLINE, gherkin::GherkinEnv::default()).unwrap();
        let expanded = raw.clone().expand_examples().unwrap();
        let lines = map_lines(OUTLINE, &raw, &expanded);
        let p = Parsed {
            path: "/x.feature".into(),
            feature: expanded,
            lines,
        };
        let all = p.all_keys();
        // first at 9; second's examples expand to 17+2=19 and 17+3=20;
        // third at 24 in the rule.
        let first = vec![9];
        let everything = vec![9, 19, 20, 24];
        for header in [1, 2, 3, 4] {
            assert_eq!(keys_at(&p.lines, &all, header), everything, "line {header}");
        }
        assert_eq!(keys_at(&p.lines, &all, 5), everything, "Background:");
        assert_eq!(keys_at(&p.lines, &all, 6), everything, "background step");
        assert_eq!(keys_at(&p.lines, &all, 7), Vec::<usize>::new(), "blank");
        for l in [8, 9, 10, 11] {
            assert_eq!(keys_at(&p.lines, &all, l), first, "line {l}");
        }
        assert_eq!(keys_at(&p.lines, &all, 13), Vec::<usize>::new(), "comment");
        assert_eq!(keys_at(&p.lines, &all, 14), vec![19, 20], "outline line");
        assert_eq!(keys_at(&p.lines, &all, 15), vec![19, 20], "outline step");
        assert_eq!(keys_at(&p.lines, &all, 17), vec![19, 20], "Examples:");
        assert_eq!(keys_at(&p.lines, &all, 18), vec![19, 20], "header row");
        assert_eq!(keys_at(&p.lines, &all, 19), vec![19], "row p");
        assert_eq!(
            keys_at(&p.lines, &all, 21),
            vec![20],
            "row q, after a blank"
        );
        assert_eq!(p.lines.source_line[&20], 21);
        assert_eq!(keys_at(&p.lines, &all, 23), vec![24], "Rule:");
        assert_eq!(keys_at(&p.lines, &all, 25), vec![24], "rule's step");
        assert_eq!(
            keys_at(&p.lines, &all, 26),
            Vec::<usize>::new(),
            "past the end"
        );
        assert!(p.nearest(7).contains("first"), "{}", p.nearest(7));
    }

    #[test]
    fn a_rules_background_and_header_select_the_rule() {
        let text = "\
Feature: G
  Scenario: outside
    When a

  @r
  Rule: R
    Background:
      Given b

    Scenario: inside
      When c
";
        let raw = gherkin::Feature::parse(text, gherkin::GherkinEnv::default()).unwrap();
        let expanded = raw.clone().expand_examples().unwrap();
        let p = Parsed {
            path: "/g.feature".into(),
            lines: map_lines(text, &raw, &expanded),
            feature: expanded,
        };
        let all = p.all_keys();
        assert_eq!(keys_at(&p.lines, &all, 1), vec![2, 10], "feature header");
        for line in [5, 6, 7, 8] {
            assert_eq!(keys_at(&p.lines, &all, line), vec![10], "line {line}");
        }
        assert_eq!(keys_at(&p.lines, &all, 3), vec![2]);
    }

    #[test]
    fn file_and_line_targets() {
        assert_eq!(
            split_line("a/b.feature:12").unwrap(),
            (Path::new("a/b.feature"), Some(12))
        );
        assert_eq!(
            split_line("a/b.feature").unwrap(),
            (Path::new("a/b.feature"), None)
        );
        assert_eq!(split_line("c:d").unwrap(), (Path::new("c:d"), None));
        assert!(split_line("a.feature:0").is_err());
    }
}
