//! Property: for hostile label names and values (quotes, both escape characters, `$`, braces,
//! line breaks, NUL, any Unicode), under either escape character and either line ending,
//! `parse(rewrite(...))` reads back exactly the planned labels (a line break as `\n`), every
//! original instruction is unchanged, and the LABEL is the only instruction added.

use osbs_dockerfile::{
    Dockerfile, Instruction, RewritePlan, label_value_as_stored, quote_label_value_with_escape,
    rewrite,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

const TEMPLATES: &[&str] = &[
    "ARG B=r.io/base\nFROM ${B}:1 AS build\nRUN echo \"$HOME\" \\\n  && true\nLABEL existing=\"x\" name=$B\nFROM build\nUSER 1001\nRUN <<EOF\ncat /etc/os-release\nEOF\nCMD [\"a\", \"b c\"]\n",
    "# escape=`\nFROM r.io/base:1\nRUN dir C:\\ `\n  && echo `\"q`\"\nLABEL path=\"C:\\x\\\" tick=\"a``b\"\nENTRYPOINT [\"x\"]\n",
    "FROM scratch\r\nADD rootfs.tar /\r\nLABEL a=b \\\r\n  c=d\r\nCMD [\"/bin/sh\"]\r\n",
];

fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '"', '\'', '\\', '`', '$', '{', '}', '(', ')', '\n', '\r', '\t', ' ', '=', '#', '<',
            '-', ':', '\0', '\u{feff}', '\u{85}', '\u{a0}', '\u{2028}', 'é', '✓',
        ]),
        2 => prop::char::range('a', 'z'),
        1 => any::<char>(),
    ]
}

fn hostile_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(hostile_char(), 0..max).prop_map(|chars| chars.into_iter().collect())
}

/// Label names can hold anything but `=` and line breaks (which no Dockerfile can write).
fn label_name() -> impl Strategy<Value = String> {
    hostile_string(12)
        .prop_map(|name| name.replace(['=', '\n', '\r'], "_"))
        .prop_filter("non-empty", |name| !name.is_empty())
}

fn shape(instruction: &Instruction) -> (String, String, Vec<String>) {
    (
        instruction.keyword.to_string(),
        instruction.text.clone(),
        instruction
            .heredocs
            .iter()
            .map(|h| h.content.clone())
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_labels_read_back_and_change_nothing_else(
        template in prop::sample::select(TEMPLATES.to_vec()),
        labels in prop::collection::vec((label_name(), hostile_string(24)), 1..5),
    ) {
        let original = Dockerfile::parse(template).expect("template parses");
        let pins: BTreeMap<String, String> = original
            .parent_images()
            .into_iter()
            .map(|parent| (parent.written.clone(), parent.written))
            .collect();
        let plan = RewritePlan { pins, labels: labels.clone(), ..RewritePlan::default() };
        let rewritten = rewrite(&original, &plan).expect("rewrite");
        prop_assert!(rewritten.starts_with(template));
        let reparsed = Dockerfile::parse(&rewritten).expect("the rewrite parses");

        let before: Vec<_> = original.instructions().iter().map(shape).collect();
        let after: Vec<_> = reparsed.instructions().iter().map(shape).collect();
        prop_assert_eq!(after.len(), before.len() + 1);
        prop_assert_eq!(&after[..before.len()], &before[..]);
        prop_assert_eq!(after[before.len()].0.as_str(), "LABEL");
        prop_assert_eq!(reparsed.stage_users(), original.stage_users());
        prop_assert_eq!(reparsed.escape(), original.escape());

        let mut expected = original.final_stage_labels();
        for (name, value) in &labels {
            expected.insert(name.clone(), label_value_as_stored(value));
        }
        prop_assert_eq!(reparsed.final_stage_labels(), expected);
    }

    #[test]
    fn a_quoted_value_is_one_word_under_its_escape(
        value in hostile_string(40),
        escape in prop::sample::select(vec!['\\', '`']),
    ) {
        let quoted = quote_label_value_with_escape(&value, escape);
        prop_assert!(!quoted.contains('\n'));
        let text = format!("# escape={escape}\nFROM scratch\nLABEL v={quoted}\n");
        let dockerfile = Dockerfile::parse(&text).expect("parses");
        prop_assert_eq!(dockerfile.instructions().len(), 2);
        prop_assert_eq!(
            dockerfile.final_stage_labels(),
            BTreeMap::from([("v".to_owned(), label_value_as_stored(&value))])
        );
    }
}
