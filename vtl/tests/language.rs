//! The Velocity subset: references, directives, operators, methods, whitespace, and errors.

mod support;

use causeway_vtl::Template;
use support::{Request, out};

fn parse_error(template: &str) -> (u32, u32, String) {
    let e = Template::parse(template).expect_err("the template must not parse");
    (e.line, e.column, e.message)
}

#[test]
fn references_render_their_value_or_their_source_when_undefined() {
    assert_eq!(out("#set($a = 'x')$a ${a} $!a"), "x x x");
    assert_eq!(
        out("$nope ${nope} [$!nope] [$!{nope}]"),
        "$nope ${nope} [] []"
    );
    assert_eq!(out("$nope.method(1)"), "$nope.method(1)");
    assert_eq!(
        out("price: $ 5, mail me at a$b"),
        "price: $ 5, mail me at a$b"
    );
    assert_eq!(out("#set($a = 'x')${a}b $a.b"), "xb $a.b");
    assert_eq!(out("#set($a = 'x')$a."), "x.");
}

#[test]
fn escaped_dollars_and_hashes_are_literal() {
    assert_eq!(out("#set($a = 1)\\$a \\#if"), "$a #if");
}

#[test]
fn set_to_an_undefined_value_keeps_the_old_value() {
    assert_eq!(out("#set($a = 1)#set($a = $nope)$a"), "1");
}

#[test]
fn if_elseif_else_choose_the_first_true_branch() {
    let t = "#foreach($n in [1, 2, 3])#if($n == 1)one#elseif($n == 2)two#{else}other#end,#end";
    assert_eq!(out(t), "one,two,other,");
    assert_eq!(out("#if($nope)yes#else no#end"), " no");
    assert_eq!(
        out("#if('')empty strings are true#end"),
        "empty strings are true"
    );
    assert_eq!(out("#if(!$nope && (1 < 2 || false))ok#end"), "ok");
    assert_eq!(out("#if(not $nope and 2 ge 2 and 'a' ne 'b')ok#end"), "ok");
}

#[test]
fn foreach_exposes_index_count_has_next_and_velocity_count() {
    assert_eq!(
        out(
            "#foreach($x in ['a', 'b', 'c'])$foreach.index$foreach.count$velocityCount$x#if($foreach.hasNext),#end#end"
        ),
        "011a,122b,233c"
    );
    assert_eq!(
        out("#foreach($x in [1..3])#if($foreach.first)[#end$x#if($foreach.last)]#end#end"),
        "[123]"
    );
    assert_eq!(out("#foreach($x in [3..1])$x#end"), "321");
    assert_eq!(out("#foreach($x in $nope)never#end"), "");
    assert_eq!(
        out(
            "#set($m = {'a': 1, 'b': 2})#foreach($v in $m)$v#end #foreach($k in $m.keySet())$k=$m.get($k)#end"
        ),
        "12 a=1b=2"
    );
}

#[test]
fn foreach_restores_the_loop_variable_and_nested_loops_see_their_own_foreach() {
    assert_eq!(
        out(
            "#set($x = 'outer')#foreach($x in [1, 2])#foreach($y in ['a', 'b'])$x$y$foreach.index #end#end$x"
        ),
        "1a0 1b1 2a0 2b1 outer"
    );
}

#[test]
fn break_leaves_the_innermost_loop() {
    assert_eq!(
        out("#foreach($x in [1..5])#if($x == 3)#break#end$x#end!"),
        "12!"
    );
    assert_eq!(
        out("a#break b"),
        "a",
        "outside a loop, #break ends the template"
    );
}

#[test]
fn comments_are_removed_and_directive_lines_leave_no_blank_lines() {
    let t = "a\n## a comment\n  #set($x = 1)\n  #if($x == 1)\n  b $x #* inline *#c\n  #end\n#*\n block\n*#\nd";
    assert_eq!(out(t), "a\n  b 1 c\nd");
    assert_eq!(out("x ## trailing\ny"), "x y");
    assert_eq!(out("#[[ $not #if( parsed ]]#"), " $not #if( parsed ");
}

#[test]
fn arithmetic_follows_java_integer_and_double_rules() {
    assert_eq!(out("#set($a = 7)#set($b = 2)${a} $a + $b"), "7 7 + 2");
    assert_eq!(
        out("#set($a = 7)#set($r = [$a + 2, $a - 9, $a * 3, $a / 2, $a % 4, $a / 2.0, -$a])$r"),
        "[9, -2, 21, 3, 3, 3.5, -7]"
    );
    assert_eq!(
        out("#set($z = 1 / 0)[$!z]"),
        "[]",
        "division by zero is null"
    );
    assert_eq!(out("#set($f = 0.1 + 0.2)$f"), "0.30000000000000004");
    assert_eq!(out("#set($f = 10000000.0 * 10)$f"), "1.0E8");
    assert_eq!(out("#set($s = 'n' + 1 + 'x')$s"), "n1x");
    assert_eq!(
        out("#if(1 == 1.0 && '1' == 1 && 2 > 1.5 && 'b' > 'a')ok#end"),
        "ok"
    );
}

#[test]
fn string_methods_behave_as_java_strings() {
    let t = r#"#set($s = "  Hello, World  ")
$s.trim().length()|$s.trim().substring(7)|$s.trim().substring(0, 5)|$s.indexOf("o")|$s.lastIndexOf("o")|$s.toLowerCase()|$s.toUpperCase().trim()|$s.contains("World")|$s.trim().startsWith("Hell")|$s.trim().endsWith("!")|$s.replace("l", "L")|$s.trim().replaceAll("[aeiou]", "*")|$s.trim().replaceFirst("(\w+), (\w+)", "$2 $1")|$s.trim().equals("Hello, World")|$s.isEmpty()|"".isEmpty()|$s.trim().matches("H.*d")|$s.trim().matches("ello")|$s.trim().charAt(4)"#;
    assert_eq!(
        out(t),
        "12|World|Hello|6|10|  hello, world  |HELLO, WORLD|true|true|false|  HeLLo, WorLd  |H*ll*, W*rld|World Hello|true|false|\"\".isEmpty()|true|false|o"
    );
    assert_eq!(
        out("'a,b,,c,,'.split(',')"),
        "'a,b,,c,,'.split(',')",
        "text, not an expression"
    );
    assert_eq!(
        out("#set($str = 'a,b,,c,,')#set($p = $str.split(','))$p $p.size()"),
        "[a, b, , c] 4"
    );
    assert_eq!(
        out("#set($str = 'abc')#set($p = $str.split(''))$p"),
        "[a, b, c]"
    );
    assert_eq!(
        out("#set($s = 'x')$s.concat('y') $s.equalsIgnoreCase('X') ${s.hashCode()}"),
        "xy true 120"
    );
}

#[test]
fn list_and_map_methods_mutate_shared_values() {
    assert_eq!(
        out(
            "#set($l = [])#set($m = {})$l.add('a') $l.add('b') $l.size() $l.get(1) $l.contains('a') $l.isEmpty() $l"
        ),
        "true true 2 b true false [a, b]"
    );
    assert_eq!(
        out(
            "#set($m = {'k': 'v'})#set($n = $m)$!n.put('x', 1)$m.size() $m.containsKey('x') $m.keySet() $m.values() $m $m.get('k') $m.k $m['x']"
        ),
        "2 true [k, x] [v, 1] {k=v, x=1} v v 1"
    );
    assert_eq!(
        out(
            "#set($m = {})#set($m.a = 1)#set($m['b'] = 2)#foreach($e in $m.entrySet())$e.key:$e.value #end"
        ),
        "a:1 b:2 "
    );
    assert_eq!(
        out("#set($m = {})$m.put('a', 1)"),
        "$m.put('a', 1)",
        "put of a new key returns null"
    );
    assert_eq!(out("#set($l = [1, 2, 3])$l[0]$l[2] [$!l[5]]"), "13 []");
}

#[test]
fn double_quoted_strings_interpolate_and_single_quoted_do_not() {
    assert_eq!(
        out("#set($n = 'Rex')#set($a = \"dog $n #if(true)ok#end\")#set($b = '$n')$a $b"),
        "dog Rex ok $n"
    );
}

#[test]
fn method_failures_are_errors_with_the_reference_position() {
    let r = Request::new();
    let e = r.render("ab\n  $s.substring(5)").map(|o| o.body);
    assert_eq!(
        e,
        Ok("ab\n  $s.substring(5)".to_string()),
        "undefined $s: no call"
    );
    let e = r.render("#set($s = 'abc')\n  $s.substring(5)").unwrap_err();
    assert!(
        e.to_string().starts_with("line 2, column 3: substring"),
        "{e}"
    );
    let e = r.render("#set($s = 'abc')$s.matches('(')").unwrap_err();
    assert!(e.to_string().contains("bad regular expression"), "{e}");
    let e = r.render("#set($l = [])$l.get(0)").unwrap_err();
    assert!(e.to_string().contains("index out of range"), "{e}");
    let e = r.render("$util.base64Decode('***')").unwrap_err();
    assert!(e.to_string().contains("base64Decode"), "{e}");
}

#[test]
fn syntax_errors_name_the_line_and_column() {
    assert_eq!(
        parse_error("ok\n#if($a\nb").0,
        3,
        "the error is at the stray word"
    );
    assert_eq!(
        parse_error("ok\n  #if($a)\nb"),
        (2, 3, "#if without #end".into())
    );
    assert_eq!(
        parse_error("a\nb #end"),
        (2, 3, "#end without #if or #foreach".into())
    );
    assert_eq!(
        parse_error("#set($a 1)"),
        (1, 9, "expected '=' in #set".into())
    );
    assert_eq!(
        parse_error("#foreach($x on $l)#end").2,
        "expected 'in' in #foreach"
    );
    assert_eq!(parse_error("${a.b").2, "expected '}' to close '${'");
    assert_eq!(parse_error("#set($a = 'x)").2, "unterminated string");
    assert_eq!(
        parse_error("x #* never closed").2,
        "unterminated #* comment"
    );
    assert_eq!(parse_error("#macro(m)#end").2, "#macro is not supported");
    assert_eq!(
        parse_error("é #if(1 +)#end"),
        (1, 10, "unexpected ')' in an expression".into())
    );
    assert_eq!(parse_error("#else").2, "#else without #if");
    assert_eq!(parse_error("$a.b(1,").2, "expected an expression");
}

#[test]
fn unknown_hash_words_are_text() {
    assert_eq!(
        out("color: #ffffff; #notadirective #{x}"),
        "color: #ffffff; #notadirective #{x}"
    );
}

#[test]
fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(Template::parse(&format!("#set($a = {deep})")).is_err());
    let ifs = "#if(true)".repeat(5_000);
    assert!(Template::parse(&ifs).is_err());
    let refs = format!("$a{}", ".b(".repeat(5_000));
    assert!(Template::parse(&refs).is_err());
}

#[test]
fn parsing_the_same_text_twice_gives_the_same_template() {
    let t = "#set($a = {'k': [1, 2.5, \"$x\"]})#foreach($i in $a.k)$i#end";
    assert_eq!(Template::parse(t), Template::parse(t));
}

#[test]
fn hyphens_belong_to_reference_names_as_in_velocity_one_point_seven() {
    let r = Request::new().header("X-Trace-Id", "t1");
    assert_eq!(r.out("$input.params().header.X-Trace-Id"), "t1");
    assert_eq!(r.out("#set($a = 3)$a - 1"), "3 - 1");
}
