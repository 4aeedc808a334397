//! Bounds: no template can hang or balloon a worker, and nothing panics on any input.

mod support;

use std::time::Duration;

use causeway_vtl::{EvalError, Limits, Template};
use proptest::prelude::*;
use support::Request;

fn small() -> Limits {
    Limits {
        max_output_bytes: 4096,
        max_string_bytes: 4096,
        max_loop_iterations: 50,
        max_elements: 500,
        max_depth: 32,
        max_steps: 20_000,
        max_time: None,
    }
}

#[test]
fn a_loop_stops_at_its_iteration_bound() {
    let e = Request::new()
        .render("\n  #foreach($i in [1..1001])x#end")
        .unwrap_err();
    assert_eq!(
        e,
        EvalError::TooManyIterations {
            limit: 1000,
            line: 2,
            column: 3
        }
    );
    let ok = Request::new().render("#foreach($i in [1..1000])#end");
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn output_beyond_its_bound_is_an_error() {
    let e = Request::new()
        .render_with(
            "#foreach($i in [1..50])0123456789#end",
            &Limits {
                max_output_bytes: 100,
                ..small()
            },
        )
        .unwrap_err();
    assert_eq!(e, EvalError::OutputTooLarge { limit: 100 });
}

#[test]
fn doubling_a_string_hits_the_string_bound() {
    let t = "#set($s = 'xxxxxxxxxxxxxxxx')#foreach($i in [1..40])#set($s = \"$s$s\")#end";
    let e = Request::new().render_with(t, &small()).unwrap_err();
    assert_eq!(e, EvalError::StringTooLarge { limit: 4096 });
    let t = "#set($s = 'xxxxxxxxxxxxxxxx')#foreach($i in [1..40])#set($s = $s.concat($s))#end";
    assert!(matches!(
        Request::new().render_with(t, &small()),
        Err(EvalError::StringTooLarge { .. })
    ));
    let t =
        "#set($s = 'xxxxxxxxxxxxxxxx')#foreach($i in [1..40])#set($s = $s.replace('x', 'xx'))#end";
    assert!(matches!(
        Request::new().render_with(t, &small()),
        Err(EvalError::StringTooLarge { .. })
    ));
    let t = "#set($s = 'xxxxxxxxxxxxxxxx')#foreach($i in [1..40])#set($s = $s.replaceAll('x', 'xx'))#end";
    assert!(matches!(
        Request::new().render_with(t, &small()),
        Err(EvalError::StringTooLarge { .. })
    ));
}

#[test]
fn growing_a_list_hits_the_element_bound() {
    let t = "#set($l = [])#foreach($i in [1..50])#foreach($j in [1..50])$!l.add($j)#end#end";
    assert_eq!(
        Request::new().render_with(t, &small()).unwrap_err(),
        EvalError::TooManyElements { limit: 500 }
    );
    assert!(matches!(
        Request::new().render("#set($r = [1..100000000])"),
        Err(EvalError::TooManyElements { .. })
    ));
}

#[test]
fn nested_loops_hit_the_step_budget() {
    let t = "#set($r = [1..50])#foreach($a in $r)#foreach($b in $r)#foreach($c in $r)#set($x = $a)#end#end#end";
    assert_eq!(
        Request::new().render_with(t, &small()).unwrap_err(),
        EvalError::StepBudget { limit: 20_000 }
    );
}

#[test]
fn the_time_budget_stops_a_slow_template() {
    let t = "#foreach($a in [1..1000])#foreach($b in [1..1000])#set($x = $a)#end#end";
    let limits = Limits {
        max_steps: u64::MAX,
        max_time: Some(Duration::from_millis(20)),
        ..Limits::default()
    };
    assert_eq!(
        Request::new().render_with(t, &limits).unwrap_err(),
        EvalError::TimeBudget {
            limit: Duration::from_millis(20)
        }
    );
}

#[test]
fn a_list_that_contains_itself_renders_within_the_depth_bound() {
    let e = Request::new()
        .render("#set($l = [])$l.add($l)$l")
        .unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::TooDeep { .. } | EvalError::StringTooLarge { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn a_deeply_nested_json_body_hits_the_depth_bound() {
    let body = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let e = Request::new()
        .body(&body)
        .render("$input.path('$')")
        .unwrap_err();
    assert!(matches!(e, EvalError::TooDeep { .. }), "{e:?}");
}

#[test]
fn a_huge_regular_expression_is_refused() {
    let e = Request::new()
        .render("#set($s = 'a')$s.matches('(((a{1,100}){1,100}){1,100})')")
        .unwrap_err();
    assert!(e.to_string().contains("bad regular expression"), "{e}");
}

#[test]
fn an_oversized_template_is_refused() {
    let big = "x".repeat(causeway_vtl::MAX_TEMPLATE_BYTES + 1);
    assert!(Template::parse(&big).is_err());
}

/// Pieces templates are made of, so that random sequences reach deep into the grammar.
const PIECES: &[&str] = &[
    "$a",
    "$!b",
    "${c}",
    "$l",
    "$m",
    "$input.body",
    "$input.json('$')",
    "$input.path('$.x')",
    "$input.params()",
    "$input.params('p')",
    "$util.escapeJavaScript($a)",
    "$util.parseJson($a)",
    "$context.requestId",
    "$stageVariables.s",
    "$foreach.index",
    "$velocityCount",
    ".size()",
    ".get(0)",
    ".add($a)",
    ".put('k', $l)",
    "[0]",
    "['k']",
    ".substring(1, 2)",
    ".split(',')",
    ".replaceAll('a*', '$0$0')",
    ".keySet()",
    "#set($a = ",
    "#set($l = [$l, $l])",
    "#set($m = {'k': $m})",
    ")",
    "(",
    "#if(",
    "#elseif(",
    "#else",
    "#end",
    "#foreach($x in ",
    "[1..20]",
    "$l)",
    "#break",
    "## c\n",
    "#* c *#",
    " == ",
    " + ",
    " * ",
    " && ",
    "!",
    "'s'",
    "\"i $a\"",
    "1",
    "2.5",
    "true",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\n",
    " ",
    "x",
    "#",
    "\\",
];

fn template() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..60).prop_map(|p| p.concat())
}

fn body() -> impl Strategy<Value = String> {
    let chars = vec!['[', ']', '{', '}', '"', 'a', ',', ':', '0', '7', ' '];
    prop::collection::vec(prop::sample::select(chars), 0..40).prop_map(String::from_iter)
}

fn any_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..200).prop_map(String::from_iter)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_and_render_never_panic_and_respect_the_bounds(t in template(), body in body()) {
        if let Ok(template) = Template::parse(&t) {
            let request = Request::new().body(&body).path("p", "1").header("h", "v");
            let limits = small();
            if let Ok(rendered) = request.render_with(&t, &limits) {
                prop_assert!(rendered.body.len() <= limits.max_output_bytes);
            }
            prop_assert_eq!(Some(template), Template::parse(&t).ok());
        }
    }

    #[test]
    fn any_text_parses_or_fails_with_a_position_inside_it(t in any_text()) {
        if let Err(e) = Template::parse(&t) {
            let lines = u32::try_from(t.split('\n').count()).unwrap_or(u32::MAX);
            prop_assert!(e.line >= 1 && e.line <= lines, "{e}");
            prop_assert!(e.column >= 1);
        }
    }
}
