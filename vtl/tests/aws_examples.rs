//! Golden tests written after the examples of AWS's "mapping template and access logging
//! variable reference" and "mapping template examples" (Pet Store, photo album, news article):
//! the facts are AWS's, the expected outputs are what their templates produce.

mod support;

use serde_json::json;
use support::{Request, json, out};

const PETS: &str = r#"[
  {"id": 1, "type": "dog", "price": 249.99},
  {"id": 2, "type": "cat", "price": 124.99},
  {"id": 3, "type": "fish", "price": 0.99}
]"#;

#[test]
fn the_pet_store_response_template_rewrites_each_pet() {
    let template = r#"#set($inputRoot = $input.path('$'))
[
#foreach($elem in $inputRoot)
  {
    "description" : "Item $elem.id is a $elem.type.",
    "askingPrice" : $elem.price
  }#if($foreach.hasNext),#end

#end
]"#;
    let output = Request::new().body(PETS).out(template);
    assert_eq!(
        json(&output),
        json!([
            {"description": "Item 1 is a dog.", "askingPrice": 249.99},
            {"description": "Item 2 is a cat.", "askingPrice": 124.99},
            {"description": "Item 3 is a fish.", "askingPrice": 0.99}
        ])
    );
    assert!(output.starts_with("[\n  {\n    \"description\" : \"Item 1 is a dog.\""));
}

#[test]
fn the_pet_store_request_template_reads_path_query_and_body() {
    let template = r#"{
    "petId": "$input.params('petId')",
    "type": "$input.params('type')",
    "name": $input.json('$.name'),
    "tags": $input.json('$.tags')
}"#;
    let output = Request::new()
        .path("petId", "42")
        .query("type", "dog")
        .body(r#"{"name": "Rex", "tags": ["good", "boy"]}"#)
        .out(template);
    assert_eq!(
        json(&output),
        json!({"petId": "42", "type": "dog", "name": "Rex", "tags": ["good", "boy"]})
    );
}

#[test]
fn the_photo_album_template_flattens_nested_photos() {
    let body = r#"{
  "photos": {
    "page": 1, "pages": "1234", "perpage": 100, "total": "123398",
    "photo": [
      {"id": "12345678901", "owner": "23456789@A12", "secret": "abc123d456", "server": "1234",
       "farm": 1, "title": "Sample photo 1", "ispublic": true, "isfriend": false, "isfamily": false},
      {"id": "23456789012", "owner": "34567890@B23", "secret": "bcd234e567", "server": "2345",
       "farm": 2, "title": "Sample photo 2", "ispublic": true, "isfriend": false, "isfamily": false}
    ]
  }
}"#;
    let template = r#"#set($inputRoot = $input.path('$'))
{
  "photos": [
#foreach($elem in $inputRoot.photos.photo)
    {
      "id": "$elem.id",
      "photographedBy": "$elem.owner",
      "title": "$elem.title",
      "ispublic": $elem.ispublic,
      "isfriend": $elem.isfriend,
      "isfamily": $elem.isfamily
    }#if($foreach.hasNext),#end

#end
  ]
}"#;
    let output = Request::new().body(body).out(template);
    assert_eq!(
        json(&output),
        json!({"photos": [
            {"id": "12345678901", "photographedBy": "23456789@A12", "title": "Sample photo 1",
             "ispublic": true, "isfriend": false, "isfamily": false},
            {"id": "23456789012", "photographedBy": "34567890@B23", "title": "Sample photo 2",
             "ispublic": true, "isfriend": false, "isfamily": false}
        ]})
    );
}

#[test]
fn the_news_article_template_picks_fields_with_input_json() {
    let body = r#"{"count": 1, "items": [{"last_updated_date": "2015-04-24", "expire_date": "2016-04-25",
      "author_first_name": "John", "description": "Sample Description", "creation_date": "2015-04-20",
      "title": "Sample Title", "allow_comment": "1", "author": {"last_name": "Doe", "email": "john@example.com",
      "first_name": "John"}, "body": "Sample Body", "publish_date": "2015-04-25", "version": "1",
      "author_last_name": "Doe", "parent_id": 2345678901, "article_url": "http://www.example.com/articles/3456789012"}],
      "version": 1}"#;
    let template = r#"#set($inputRoot = $input.path('$'))
{
  "count": $inputRoot.count,
  "items": [
#foreach($elem in $inputRoot.items)
    {
      "description": "$elem.description",
      "title": "$elem.title",
      "author": "$elem.author.first_name $elem.author.last_name",
      "parent_id": $elem.parent_id,
      "author_email": $input.json("$.items[$foreach.index].author.email")
    }#if($foreach.hasNext),#end

#end
  ]
}"#;
    let output = Request::new().body(body).out(template);
    assert_eq!(
        json(&output),
        json!({"count": 1, "items": [{"description": "Sample Description", "title": "Sample Title",
            "author": "John Doe", "parent_id": 2345678901_i64, "author_email": "john@example.com"}]})
    );
}

#[test]
fn context_variables_pass_to_the_backend_under_other_names() {
    let template = r#"{
    "stage" : "$context.stage",
    "request_id" : "$context.requestId",
    "api_id" : "$context.apiId",
    "resource_path" : "$context.resourcePath",
    "http_method" : "$context.httpMethod",
    "source_ip" : "$context.identity.sourceIp",
    "user-agent" : "$context.identity.userAgent"
}"#;
    let output = Request::new()
        .context("stage", "prod")
        .context("requestId", "abcdefg-000-000-0000-abcdefg")
        .context("apiId", "abcd1234")
        .context("resourcePath", "/")
        .context("httpMethod", "GET")
        .context("identity.sourceIp", "192.0.2.1")
        .context("identity.userAgent", "curl/7.84.0")
        .out(template);
    assert_eq!(
        json(&output),
        json!({"stage": "prod", "request_id": "abcdefg-000-000-0000-abcdefg", "api_id": "abcd1234",
            "resource_path": "/", "http_method": "GET", "source_ip": "192.0.2.1",
            "user-agent": "curl/7.84.0"})
    );
}

#[test]
fn every_request_parameter_passes_through_a_json_payload() {
    let template = r#"#set($allParams = $input.params())
{
  "params" : {
    #foreach($type in $allParams.keySet())
    #set($params = $allParams.get($type))
    "$type" : {
      #foreach($paramName in $params.keySet())
      "$paramName" : "$util.escapeJavaScript($params.get($paramName))"
      #if($foreach.hasNext),#end
      #end
    }
    #if($foreach.hasNext),#end
    #end
  }
}"#;
    let output = Request::new()
        .path("id", "7")
        .query("q", "it's \"quoted\"")
        .header("Accept", "application/json")
        .header("X-Trace", "abc")
        .out(template);
    // escapeJavaScript escapes `'` as `\'`, which is not valid JSON: AWS documents exactly this.
    let output = output.replace("\\'", "'");
    assert_eq!(
        json(&output),
        json!({"params": {
            "path": {"id": "7"},
            "querystring": {"q": "it's \"quoted\""},
            "header": {"Accept": "application/json", "X-Trace": "abc"}
        }})
    );
    let keys: Vec<_> = json(&output)["params"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        ["header", "path", "querystring"],
        "serde_json sorts; order checked below"
    );
    let order = Request::new()
        .path("a", "1")
        .query("b", "2")
        .header("c", "3")
        .out("#foreach($t in $input.params().keySet())$t #end");
    assert_eq!(order, "path querystring header ");
}

#[test]
fn input_params_by_name_search_path_then_query_string_then_header() {
    let request = Request::new()
        .path("id", "from-path")
        .query("id", "from-query")
        .header("id", "from-header")
        .query("q", "from-query")
        .header("q", "from-header")
        .header("X-Only-Header", "h");
    assert_eq!(request.out("$input.params('id')"), "from-path");
    assert_eq!(request.out("$input.params('q')"), "from-query");
    assert_eq!(request.out("$input.params('x-only-header')"), "h");
    assert_eq!(request.out("[$input.params('missing')]"), "[]");
    assert_eq!(
        request.out("$input.params().header.get('x-only-header')"),
        "h",
        "header names are found whatever their case"
    );
    assert_eq!(request.out("$input.params().path.id"), "from-path");
    assert_eq!(request.out("$input.params().querystring.q"), "from-query");
}

#[test]
fn escape_javascript_with_replace_all_is_the_documented_idiom_for_embedding_a_body() {
    let body = r#"{"says": "it's a \"dog\"", "path": "a/b"}"#;
    let template = r#"{"raw": "$util.escapeJavaScript($input.body).replaceAll("\\'","'")"}"#;
    let output = Request::new().body(body).out(template);
    let raw = json(&output)["raw"].as_str().map(str::to_string);
    assert_eq!(raw.as_deref(), Some(body));
}

#[test]
fn util_functions_behave_as_their_java_counterparts() {
    assert_eq!(
        Request::new()
            .body("a'b\"c\\d/e\tf\ng \u{e9} \u{20ac}")
            .out("$util.escapeJavaScript($input.body)"),
        r#"a\'b\"c\\d\/e\tf\ng \u00E9 \u20AC"#
    );
    assert_eq!(
        out("$util.urlEncode('a b&c=d/é*~')"),
        "a+b%26c%3Dd%2F%C3%A9*%7E"
    );
    assert_eq!(out("$util.urlDecode('a+b%26c%3Dd%2F%C3%A9')"), "a b&c=d/é");
    assert_eq!(out("$util.base64Encode('hello world')"), "aGVsbG8gd29ybGQ=");
    assert_eq!(out("$util.base64Decode('aGVsbG8gd29ybGQ=')"), "hello world");
    assert_eq!(
        out(
            r#"#set($o = $util.parseJson('{"a": {"b": [1, 2.5, "x"]}}'))$o.a.b[1] $o.a.b.size() $o"#
        ),
        "2.5 3 {a={b=[1, 2.5, x]}}"
    );
}

#[test]
fn stage_variables_are_read_by_name() {
    let request = Request::new().stage_variable("petsHost", "pets.internal");
    assert_eq!(
        request.out("http://$stageVariables.petsHost/v1 ${stageVariables.petsHost}"),
        "http://pets.internal/v1 pets.internal"
    );
    assert_eq!(request.out("[$!stageVariables.missing]"), "[]");
}

#[test]
fn response_overrides_are_collected_for_the_gateway() {
    let template = r#"#set($inputRoot = $input.path('$'))
#if($inputRoot.toString().contains("error"))
#set($context.responseOverride.status = 400)
#set($context.responseOverride.header.X-Reason = "bad input")
#end
{"status": "$context.responseOverride.status"}"#;
    let rendered = Request::new()
        .body(r#"{"error": "boom"}"#)
        .render(template)
        .expect("renders");
    assert_eq!(rendered.body, "{\"status\": \"400\"}");
    assert_eq!(
        rendered
            .overrides
            .get("responseOverride.status")
            .map(String::as_str),
        Some("400")
    );
    assert_eq!(
        rendered
            .overrides
            .get("responseOverride.header.X-Reason")
            .map(String::as_str),
        Some("bad input")
    );
}

#[test]
fn a_missing_json_path_gives_an_empty_json_string_and_an_undefined_path_value() {
    let request = Request::new().body(r#"{"a": 1}"#);
    assert_eq!(request.out("$input.json('$.missing')"), "\"\"");
    assert_eq!(
        request.out("$input.path('$.missing')"),
        "$input.path('$.missing')"
    );
    assert_eq!(request.out("[$!input.path('$.missing')]"), "[]");
    assert_eq!(
        Request::new().out("$input.json('$')"),
        "{}",
        "an empty body is {{}}"
    );
}

#[test]
fn json_path_supports_brackets_indexes_and_wildcards() {
    let request =
        Request::new().body(r#"{"a b": {"c": [10, 20, 30]}, "items": [{"n": "x"}, {"n": "y"}]}"#);
    assert_eq!(request.out("$input.json(\"$['a b'].c[1]\")"), "20");
    assert_eq!(request.out("$input.json('$.items[*].n')"), "[\"x\",\"y\"]");
    assert_eq!(request.out("$input.json('$.items[-1]')"), "{\"n\":\"y\"}");
    assert_eq!(request.out("$input.path('$.items').size()"), "2");
}

#[test]
fn a_body_that_is_not_json_fails_only_when_read_as_json() {
    let request = Request::new().body("not json");
    assert_eq!(request.out("$input.body"), "not json");
    let error = request.render("x $input.json('$')").unwrap_err();
    assert!(error.to_string().contains("line 1, column 3"), "{error}");
}
