//! Classification of a document into the seed's categories.

use std::fmt;
use std::str::FromStr;

use crate::Page;

/// The category of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Invoices, bills, receipts, statements, budgets.
    Financial,
    /// Books, manuals, reports, lecture notes: many pages or words.
    LongForm,
    /// Everything else.
    Generic,
}

/// The error of parsing an unknown category name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown category {0:?} (expected financial, long_form or generic)")]
pub struct ParseCategoryError(String);

impl Category {
    /// Returns the stored name: `financial`, `long_form` or `generic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Financial => "financial",
            Self::LongForm => "long_form",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = ParseCategoryError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "financial" => Ok(Self::Financial),
            "long_form" => Ok(Self::LongForm),
            "generic" => Ok(Self::Generic),
            other => Err(ParseCategoryError(other.to_owned())),
        }
    }
}

/// A document with at least this many pages is long-form.
const LONG_FORM_PAGES: usize = 10;
/// A document with at least this many words is long-form.
const LONG_FORM_WORDS: usize = 5_000;
/// The financial score (weighted hits per 100 words) from which a document
/// is financial. On the dev corpus invoices and budgets score 11–43 and
/// everything else at most 3 (the 50-page IRS instructions, full of "tax").
const FINANCIAL_SCORE: f64 = 5.0;
/// How much more a keyword in the title counts than one in the text.
const TITLE_WEIGHT: u32 = 4;

/// Financial words (English, French, Dutch, German, Indian English) that
/// name the document: weight 3.
const DOCUMENT_WORDS: &[&str] = &[
    "invoice", "invoices", "invoiced", "facture", "factuur", "rechnung", "receipt", "quittung",
    "crore", "crores",
];
/// Tax, budget and billing words: weight 2.
const TAX_WORDS: &[&str] = &[
    "vat", "tva", "btw", "gst", "mwst", "iva", "ttc", "lakh", "lakhs", "budget", "subtotal",
    "billing",
];
/// Common money words: weight 1.
#[rustfmt::skip]
const MONEY_WORDS: &[&str] = &[
    "bill", "payment", "payments", "paiement", "betaling", "zahlung", "tax", "taxes", "taxable",
    "amount", "amounts", "montant", "bedrag", "betrag", "total", "totaal", "totale", "gesamt",
    "due", "paid", "balance", "price", "prix", "prijs", "preis", "qty", "quantity", "rupees",
    "usd", "eur", "inr", "euro", "euros", "charge", "charges", "fees", "discount", "remise",
    "korting", "rabatt", "expenditure", "revenue",
];

/// Currency signs that may stick to an amount.
const CURRENCY_SIGNS: &[char] = &['$', '€', '£', '₹', '¥'];

/// Returns the category of a document from its title and page text.
///
/// The rules, in order, are deterministic and cheap:
/// 1. **financial** when the financial score reaches 5: every word of the
///    text that is a financial keyword adds its weight: 3 for words naming
///    the document (invoice, facture, factuur, Rechnung, receipt, crores),
///    2 for taxes and budgets (VAT/TVA/BTW/GST, budget, subtotal), 1 for
///    common money words (total, amount, due, payment, price, ...); every
///    currency amount (`$4.11`, `189,00`, `31062.94`, `€5`) adds 1, and the
///    sum is taken per 100 words of text, so long documents that merely
///    mention money stay low. Title keywords count four times.
/// 2. **long_form** when the document has at least 10 pages or 5,000 words.
/// 3. **generic** otherwise.
///
/// Financial comes first so that a long bank statement stays financial; the
/// threshold keeps tax instructions (2.8 per 100 words) out of it.
pub fn classify(title: &str, pages: &[Page]) -> Category {
    let mut words = 0_usize;
    let mut score = 0_u32;
    for page in pages {
        for token in page.text.split_whitespace() {
            words += 1;
            score += keyword_weight(token) + u32::from(is_amount(token));
        }
    }
    score += TITLE_WEIGHT * title.split_whitespace().map(keyword_weight).sum::<u32>();
    let per_hundred_words = f64::from(score) * 100.0 / words.max(1) as f64;
    if per_hundred_words >= FINANCIAL_SCORE {
        return Category::Financial;
    }
    if pages.len() >= LONG_FORM_PAGES || words >= LONG_FORM_WORDS {
        return Category::LongForm;
    }
    Category::Generic
}

/// Returns the summed weights of the financial keywords in a token; a token
/// such as `Invoice/Facture` may hold more than one.
fn keyword_weight(token: &str) -> u32 {
    token
        .split(|c: char| !c.is_alphabetic())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let part = part.to_lowercase();
            let part = part.as_str();
            if DOCUMENT_WORDS.contains(&part) {
                3
            } else if TAX_WORDS.contains(&part) {
                2
            } else {
                u32::from(MONEY_WORDS.contains(&part))
            }
        })
        .sum()
}

/// Returns whether a token is a currency amount: digits with a decimal
/// part of two digits (`4.11`, `1,234.50`, `189,00`), or digits right after
/// a currency sign (`$5`, `€189`), signs and closing punctuation allowed.
fn is_amount(token: &str) -> bool {
    let token = token.trim_end_matches([',', ';', ':', ')', '.']);
    let signed = token.starts_with(CURRENCY_SIGNS) || token.ends_with(CURRENCY_SIGNS);
    let token = token.trim_matches(CURRENCY_SIGNS).trim_start_matches('-');
    let bytes = token.as_bytes();
    if bytes.is_empty()
        || !bytes
            .iter()
            .all(|b| b.is_ascii_digit() || *b == b'.' || *b == b',')
    {
        return false;
    }
    if !bytes[0].is_ascii_digit() {
        return false;
    }
    let decimals = bytes.len() >= 4
        && matches!(bytes[bytes.len() - 3], b'.' | b',')
        && bytes[bytes.len() - 2..].iter().all(u8::is_ascii_digit);
    decimals || (signed && bytes.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(texts: &[&str]) -> Vec<Page> {
        texts
            .iter()
            .zip(1..)
            .map(|(text, number)| Page {
                number,
                text: (*text).to_owned(),
            })
            .collect()
    }

    #[test]
    fn names_round_trip() {
        for category in [Category::Financial, Category::LongForm, Category::Generic] {
            assert_eq!(category.as_str().parse::<Category>(), Ok(category));
        }
        assert!("invoice".parse::<Category>().is_err());
    }

    #[test]
    fn amounts_are_recognised() {
        for amount in [
            "4.11", "$4.11", "1,234.50", "189,00", "31062.94", "€5", "$2,", "279.84)",
        ] {
            assert!(is_amount(amount), "{amount}");
        }
        for other in ["2014", "18.7", "2014-15", "$", "a.bc", "07-1315", ".50"] {
            assert!(!is_amount(other), "{other}");
        }
    }

    #[test]
    fn invoices_in_several_languages_are_financial() {
        let english =
            "Invoice 42 Amount due $4.11 VAT 0.00 Total $4.11 thank you for your business";
        let french = "Facture n° 562044387 Montant total 29.99 € TTC dont TVA 5,00 à payer avant le 5 juillet";
        let dutch = "Factuur 8587333880016 Bedrag incl. BTW € 189,00 BenQ monitor geleverd aan u";
        for text in [english, french, dutch] {
            assert_eq!(classify("", &pages(&[text])), Category::Financial, "{text}");
        }
    }

    #[test]
    fn prose_is_generic_and_many_pages_are_long_form() {
        let prose = "Here's to the crazy ones, the misfits, the rebels, the troublemakers.";
        assert_eq!(classify("", &pages(&[prose])), Category::Generic);
        assert_eq!(classify("", &pages(&[prose; 10])), Category::LongForm);
        let many_words = "word ".repeat(LONG_FORM_WORDS);
        assert_eq!(classify("", &pages(&[&many_words])), Category::LongForm);
    }

    #[test]
    fn money_mentioned_in_long_prose_stays_long_form() {
        let text = format!(
            "{} the tax is due in April.",
            "instructions for filing the form ".repeat(20)
        );
        assert_eq!(
            classify("", &pages(&[text.as_str(); 12])),
            Category::LongForm
        );
    }

    #[test]
    fn title_keywords_weigh_more() {
        let text = "Thank you for your order of one gaming monitor, shipped today to your address.";
        assert_eq!(classify("", &pages(&[text])), Category::Generic);
        assert_eq!(
            classify("Invoice 2015", &pages(&[text])),
            Category::Financial
        );
    }

    #[test]
    fn empty_document_is_generic() {
        assert_eq!(classify("", &[]), Category::Generic);
    }
}
