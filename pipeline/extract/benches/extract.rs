//! Benchmark of the rule-based extractor, the intent stage's per-prompt
//! work, in memory.
//!
//! ```sh
//! cargo bench -p chatcart-extract --bench extract
//! ```
//!
//! - `extract/mixed`: [`Extractor::extract`] over a mixed set of prompts as campaign
//!   traffic has them: Chinese, English and mixed orders with numerals,
//!   options, several items, delivery details and noise, plus greetings,
//!   questions, refunds and unknown items. Throughput is in prompts per
//!   second.
//! - `extract/lexicon`: building the catalog's tables and segmenter, which
//!   happens once per process.

use std::hint::black_box;
use std::time::Duration;

use chatcart_extract::Extractor;
use chatcart_extract::catalog::Catalog;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PROMPTS: &[&str] = &[
    "帮我买40杯奶茶",
    "奶茶40杯",
    "来一杯拿铁",
    "两杯珍珠奶茶和一个汉堡",
    "来一份炸鸡再来俩蛋挞",
    "热拿铁大杯少糖",
    "两杯珍珠奶茶，半糖去冰，送到3号楼502",
    "麻烦帮我下单一杯柠檬茶，谢谢",
    "你好，帮我买三杯奶茶，谢谢！",
    "奶茶、拿铁、美式各一杯",
    "🧋🧋两杯珍珠奶茶！！！🙏",
    "二十五杯美式",
    "一打蛋挞",
    "地址：5栋1单元302，奶茶两杯",
    "lemon tea x4",
    "I'd like a couple of burgers please",
    "two large iced lattes and an egg tart, coupon code SPRING50",
    "Can I get three americanos, no sugar?",
    "a dozen egg tarts",
    "deliver to room 12, 2 lattes",
    "2 burgers, 3 fried chicken, 1 milk tea",
    "please get me 2 lattes, thanks!",
    "两杯latte",
    "来2个burger和一杯奶茶",
    "ＢＯＢＡ ３",
    "你好",
    "我的订单到哪了？",
    "where is my order?",
    "I want a refund for my latte",
    "奶茶多少钱？",
    "帮我买两个披萨",
    "order 3 pizzas",
];

fn bench_extract(c: &mut Criterion) {
    let extractor = Extractor::built_in();
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(PROMPTS.len() as u64));
    g.sample_size(50);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("mixed", |b| {
        b.iter(|| {
            for prompt in PROMPTS {
                black_box(extractor.extract(50, black_box(prompt)));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("extract");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("lexicon", |b| {
        b.iter(|| {
            let catalog =
                Catalog::parse(chatcart_extract::catalog::BUILT_IN).expect("valid catalog");
            black_box(Extractor::new(catalog))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_extract);
criterion_main!(benches);
