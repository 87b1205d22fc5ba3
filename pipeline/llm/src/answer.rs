//! Reading an answer out of an LLM endpoint's response body.
//!
//! Whatever the endpoint returns is untrusted: the model saw untrusted user
//! text and may have been talked into anything. So the body is bounded, the
//! shape is checked field by field, everything not in the shape (prices,
//! users, credit, limits, ...) is ignored, and the result is still only a
//! proposal: [`Answer`] is unvalidated, and the caller checks it against the
//! catalog and the limits exactly like the rules' output.
//!
//! Error messages never quote the body, since it may echo the prompt, and
//! prompt text is personal data.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use extract::RawItem;

use super::LlmError;

/// Largest response body read; anything longer is an error, not truncated.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Most items one answer may hold. More is an error rather than a cut, so
/// that an order is never placed with part of what was asked for missing.
pub const MAX_ITEMS: usize = 20;
/// Most options one item may carry.
pub const MAX_OPTIONS: usize = 16;
/// Longest SKU id, option name or value, coupon code or rejection reason.
pub const MAX_FIELD_CHARS: usize = 128;

/// What the model proposes. Unvalidated: SKUs, options and quantities may
/// be anything and must be checked against the catalog and the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The prompt asks to buy these.
    Items {
        items: Vec<RawItem>,
        coupon_code: Option<String>,
    },
    /// The prompt is not an order; the reason as the model gave it (e.g.
    /// `not_a_purchase`).
    Rejected(String),
}

/// The part of an OpenAI chat completion this adapter reads; other fields
/// are ignored.
#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    /// `null` when the model refused or called a tool instead.
    content: Option<String>,
}

/// Parses a whole chat-completion response body.
pub fn parse_completion(body: &[u8]) -> Result<Answer, LlmError> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(LlmError::TooLarge {
            limit: MAX_RESPONSE_BYTES,
        });
    }
    let completion: Completion = serde_json::from_slice(body).map_err(|_| LlmError::NotJson)?;
    let content = completion
        .choices
        .into_iter()
        .next()
        .ok_or(LlmError::Malformed("the completion has no choices"))?
        .message
        .content
        .ok_or(LlmError::Malformed("the message has no text content"))?;
    parse_content(&content)
}

/// Parses the model's message text: one JSON object, possibly inside a
/// Markdown code fence, which models add even when asked not to.
pub fn parse_content(content: &str) -> Result<Answer, LlmError> {
    let value: Value = serde_json::from_str(strip_fences(content))
        .map_err(|_| LlmError::Malformed("the message is not JSON"))?;
    let Value::Object(object) = value else {
        return Err(LlmError::Malformed("the message is not a JSON object"));
    };
    if let Some(reason) = object.get("rejected").filter(|v| !v.is_null()) {
        let reason = short_string(reason, "`rejected` is not a short string")?;
        return Ok(Answer::Rejected(reason));
    }
    let items = match object.get("items") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(LlmError::Malformed("`items` is not an array")),
        None => {
            return Err(LlmError::Malformed(
                "the object has neither `items` nor `rejected`",
            ));
        }
    };
    if items.len() > MAX_ITEMS {
        return Err(LlmError::TooManyItems {
            count: items.len(),
            limit: MAX_ITEMS,
        });
    }
    let items = items.iter().map(item).collect::<Result<Vec<_>, _>>()?;
    let coupon_code = match object.get("coupon_code") {
        None | Some(Value::Null) => None,
        Some(code) => {
            let code = short_string(code, "`coupon_code` is not a short string or null")?;
            Some(code).filter(|c| !c.is_empty())
        }
    };
    Ok(Answer::Items { items, coupon_code })
}

fn item(value: &Value) -> Result<RawItem, LlmError> {
    let Value::Object(object) = value else {
        return Err(LlmError::Malformed("an item is not an object"));
    };
    let sku = short_string(
        object.get("sku").unwrap_or(&Value::Null),
        "an item's `sku` is not a short string",
    )?;
    if sku.is_empty() {
        return Err(LlmError::Malformed("an item's `sku` is empty"));
    }
    // A whole number only: "2", 2.5 or 1e3 are not guessed at.
    let quantity = object
        .get("quantity")
        .and_then(Value::as_i64)
        .ok_or(LlmError::Malformed(
            "an item's `quantity` is not a whole number",
        ))?;
    let options = match object.get("options") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(options)) => item_options(options)?,
        Some(_) => return Err(LlmError::Malformed("an item's `options` is not an object")),
    };
    Ok(RawItem {
        sku,
        quantity,
        options,
    })
}

fn item_options(options: &Map<String, Value>) -> Result<BTreeMap<String, String>, LlmError> {
    if options.len() > MAX_OPTIONS {
        return Err(LlmError::Malformed("an item has too many options"));
    }
    let mut out = BTreeMap::new();
    for (name, value) in options {
        // `"size": null` is how models say "not specified".
        if value.is_null() {
            continue;
        }
        if name.chars().count() > MAX_FIELD_CHARS {
            return Err(LlmError::Malformed("an option name is too long"));
        }
        let value = short_string(value, "an option value is not a short string")?;
        out.insert(name.trim().to_owned(), value);
    }
    Ok(out)
}

fn short_string(value: &Value, problem: &'static str) -> Result<String, LlmError> {
    match value {
        Value::String(s) if s.chars().count() <= MAX_FIELD_CHARS => Ok(s.trim().to_owned()),
        _ => Err(LlmError::Malformed(problem)),
    }
}

/// The text inside a leading ```` ``` ```` or ```` ```json ```` fence, or the
/// trimmed text when there is none.
fn strip_fences(content: &str) -> &str {
    let trimmed = content.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    // The info string ("json", "JSON", ...) runs to the end of the line.
    let body = rest.split_once('\n').map_or("", |(_, body)| body);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(content: &str) -> Vec<u8> {
        serde_json::json!({
            "id": "x",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn items_and_coupon() {
        let answer = parse_completion(&completion(
            r#"{"items":[{"sku":"milk-tea","quantity":2,"options":{"size":"large","sugar":null}}],"coupon_code":" SPRING "}"#,
        ))
        .expect("a good answer");
        let expected = Answer::Items {
            items: vec![RawItem {
                sku: "milk-tea".into(),
                quantity: 2,
                options: BTreeMap::from([("size".into(), "large".into())]),
            }],
            coupon_code: Some("SPRING".into()),
        };
        assert_eq!(answer, expected);
    }

    #[test]
    fn rejection() {
        let answer = parse_content(r#"{"rejected":"not_a_purchase"}"#).expect("a rejection");
        assert_eq!(answer, Answer::Rejected("not_a_purchase".into()));
        // `"rejected": null` next to items is an order.
        let answer = parse_content(r#"{"rejected":null,"items":[]}"#).expect("empty order");
        assert_eq!(
            answer,
            Answer::Items {
                items: vec![],
                coupon_code: None
            }
        );
    }

    #[test]
    fn fences_are_stripped() {
        for text in [
            "```json\n{\"rejected\":\"not_understood\"}\n```",
            "```JSON\n{\"rejected\":\"not_understood\"}```\n",
            "  ```\n{\"rejected\":\"not_understood\"}\n```  ",
            "\n{\"rejected\":\"not_understood\"}\n",
        ] {
            assert_eq!(
                parse_content(text).expect(text),
                Answer::Rejected("not_understood".into()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn fields_outside_the_shape_are_ignored() {
        // Whatever a prompt talked the model into, only sku, quantity,
        // options and a coupon code come out.
        let answer = parse_content(
            r#"{"items":[{"sku":"latte","quantity":1,"price_cents":0,"user_id":"bob"}],"credit_cents":100000,"max_quantity":99999}"#,
        )
        .expect("unknown fields are ignored");
        let Answer::Items { items, coupon_code } = answer else {
            panic!("expected items");
        };
        assert_eq!(items.len(), 1);
        assert!(items[0].options.is_empty());
        assert_eq!(coupon_code, None);
    }

    #[test]
    fn quantities_are_passed_on_for_the_caller_to_bound() {
        let answer = parse_content(r#"{"items":[{"sku":"latte","quantity":-3}]}"#).expect("parses");
        let Answer::Items { items, .. } = answer else {
            panic!("expected items");
        };
        assert_eq!(items[0].quantity, -3, "bounds are the caller's check");
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for text in [
            "sure! here is your order",
            "[]",
            "{}",
            r#"{"items":{}}"#,
            r#"{"items":[{"quantity":1}]}"#,
            r#"{"items":[{"sku":"","quantity":1}]}"#,
            r#"{"items":[{"sku":"latte","quantity":"2"}]}"#,
            r#"{"items":[{"sku":"latte","quantity":2.5}]}"#,
            r#"{"items":[{"sku":"latte","quantity":1,"options":{"size":3}}]}"#,
            r#"{"items":[{"sku":"latte","quantity":1,"options":["large"]}]}"#,
            r#"{"items":[],"coupon_code":7}"#,
            r#"{"rejected":42}"#,
        ] {
            assert!(
                matches!(parse_content(text), Err(LlmError::Malformed(_))),
                "{text}"
            );
        }
        let long = format!(
            r#"{{"items":[{{"sku":"{}","quantity":1}}]}}"#,
            "x".repeat(200)
        );
        assert!(matches!(parse_content(&long), Err(LlmError::Malformed(_))));
    }

    #[test]
    fn too_many_items() {
        let items: Vec<Value> = (0..=MAX_ITEMS)
            .map(|_| serde_json::json!({"sku": "latte", "quantity": 1}))
            .collect();
        let text = serde_json::json!({ "items": items }).to_string();
        assert!(matches!(
            parse_content(&text),
            Err(LlmError::TooManyItems {
                count: 21,
                limit: 20
            })
        ));
    }

    #[test]
    fn envelopes() {
        assert!(matches!(
            parse_completion(b"<html>bad gateway</html>"),
            Err(LlmError::NotJson)
        ));
        assert!(matches!(
            parse_completion(br#"{"choices":[]}"#),
            Err(LlmError::Malformed(_))
        ));
        assert!(matches!(
            parse_completion(br#"{"choices":[{"message":{"content":null,"refusal":"no"}}]}"#),
            Err(LlmError::Malformed(_))
        ));
        let big = vec![b' '; MAX_RESPONSE_BYTES + 1];
        assert!(matches!(
            parse_completion(&big),
            Err(LlmError::TooLarge { .. })
        ));
    }
}
