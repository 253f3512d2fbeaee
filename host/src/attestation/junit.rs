//! JUnit XML of a report, so CI systems show each case.

use super::report::{CheckResult, Report};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

struct Case {
    class: String,
    name: String,
    seconds: f64,
    failures: Vec<String>,
}

struct Suite {
    name: String,
    cases: Vec<Case>,
}

fn failed_lines(checks: &[CheckResult]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.check, c.detail.as_deref().unwrap_or("failed")))
        .collect()
}

fn check_suite(name: &str, class: &str, checks: &[CheckResult]) -> Suite {
    Suite {
        name: name.into(),
        cases: checks
            .iter()
            .map(|c| Case {
                class: class.into(),
                name: c.check.clone(),
                seconds: 0.0,
                failures: failed_lines(std::slice::from_ref(c)),
            })
            .collect(),
    }
}

fn suites(report: &Report) -> Vec<Suite> {
    let subject = format!("{}@{}", report.agent, report.version);
    let mut suites = vec![check_suite(
        &format!("{subject} structure"),
        &report.agent,
        &report.structure,
    )];
    if !report.compatibility.is_empty() {
        suites.push(check_suite(
            &format!("{subject} compatibility"),
            &report.agent,
            &report.compatibility,
        ));
    }
    for capability in &report.capabilities {
        let class = format!("{}.{}", report.agent, capability.capability);
        let mut cases: Vec<Case> = capability
            .problems
            .iter()
            .map(|p| Case {
                class: class.clone(),
                name: "battery applies".into(),
                seconds: 0.0,
                failures: vec![p.clone()],
            })
            .collect();
        cases.extend(capability.cases.iter().map(|case| Case {
            class: class.clone(),
            name: format!("{}: {}", case.suite, case.name),
            seconds: case.duration_us as f64 / 1e6,
            failures: failed_lines(&case.checks),
        }));
        suites.push(Suite {
            name: format!("{subject} {}", capability.capability),
            cases,
        });
    }
    suites
}

/// Renders `report` as JUnit XML.
pub fn render(report: &Report) -> Result<String, std::io::Error> {
    let suites = suites(report);
    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failed = |cases: &[Case]| cases.iter().filter(|c| !c.failures.is_empty()).count();
    let failures: usize = suites.iter().map(|s| failed(&s.cases)).sum();
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut root = BytesStart::new("testsuites");
    root.push_attribute(("name", "mercato attest"));
    root.push_attribute(("tests", total.to_string().as_str()));
    root.push_attribute(("failures", failures.to_string().as_str()));
    writer.write_event(Event::Start(root))?;
    for suite in &suites {
        let mut start = BytesStart::new("testsuite");
        start.push_attribute(("name", suite.name.as_str()));
        start.push_attribute(("tests", suite.cases.len().to_string().as_str()));
        start.push_attribute(("failures", failed(&suite.cases).to_string().as_str()));
        start.push_attribute(("errors", "0"));
        writer.write_event(Event::Start(start))?;
        for case in &suite.cases {
            let mut start = BytesStart::new("testcase");
            start.push_attribute(("classname", case.class.as_str()));
            start.push_attribute(("name", case.name.as_str()));
            start.push_attribute(("time", format!("{:.6}", case.seconds).as_str()));
            if case.failures.is_empty() {
                writer.write_event(Event::Empty(start))?;
                continue;
            }
            writer.write_event(Event::Start(start))?;
            let mut failure = BytesStart::new("failure");
            failure.push_attribute(("message", case.failures[0].as_str()));
            writer.write_event(Event::Start(failure))?;
            writer.write_event(Event::Text(BytesText::new(&case.failures.join("\n"))))?;
            writer.write_event(Event::End(BytesEnd::new("failure")))?;
            writer.write_event(Event::End(BytesEnd::new("testcase")))?;
        }
        writer.write_event(Event::End(BytesEnd::new("testsuite")))?;
    }
    writer.write_event(Event::End(BytesEnd::new("testsuites")))?;
    String::from_utf8(writer.into_inner())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
