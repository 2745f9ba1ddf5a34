//! Word lists of the classification rules (lowercase; matched as
//! substrings of the lowercased subject and top of the body).

/// The GTUBE anti-spam test string, lowercased.
pub(crate) const GTUBE: &str =
    "xjs*c4jdbqadn1.nsbn3*2idnen*gtube-standard-anti-ube-test-email*c.34x";

/// One of these alone marks spam.
pub(crate) const STRONG_SPAM: &[&str] = &[
    // The subject tag US law (CAN-SPAM era state laws) required on ads.
    "adv:",
    GTUBE,
    "viagra",
    "via.gra",
    "specially selected",
    "you have been selected",
    "western union",
    "next of kin",
    "代开",
];

/// Two of these mark spam.
pub(crate) const SPAM_PHRASES: &[&str] = &[
    "click here",
    "100% free",
    "act now",
    "winner",
    "winning",
    "congratulations",
    "risk free",
    "risk-free",
    "no obligation",
    "no charge",
    "limited time",
    "money back",
    "million dollars",
    "lottery",
    "giveaway",
    "be removed",
    "to be removed",
    "fortune",
    "remove you",
    "opt-out",
    "make money",
    "cash bonus",
    "casino",
    "dear friend",
    "beneficiary",
    "order now",
    "call now",
    "free gift",
    "astounding",
    "anything about anyone",
    "potential partner",
    "potencial partner",
    "confirmation number",
    "request for quotation",
    "rfq",
    "kindly",
    "urgent",
];

pub(crate) const FINANCIAL: &[&str] = &[
    "invoice",
    "receipt",
    "payment",
    "order confirmation",
    "your order",
    "bank",
    "statement",
    "credit card",
    "cardmember",
    "card member",
    "billing",
    "transaction",
    "refund",
    "balance",
    "fattura",
    "factuur",
    "rechnung",
    "betaling",
    "bestelling",
    "ordine",
    "pagamento",
    "发票",
];

pub(crate) const NEWSLETTER: &[&str] = &[
    "newsletter",
    "webinar",
    "campaign",
    "campagna",
    "promotion",
    "promo",
    "discount",
    "sconto",
    "business partner",
    "special offer",
    "conference",
    "announce",
];

pub(crate) const NOTIFICATION: &[&str] = &[
    "notification",
    "alert",
    "do not reply",
    "do-not-reply",
    "automatically generated",
    "automated message",
    "has been updated",
    "password reset",
    "verify your account",
    "outbid",
    "you bid",
    "tracker",
    "delivery status",
    "undeliverable",
];

pub(crate) const WORK: &[&str] = &[
    "meeting",
    "project",
    "deadline",
    "patch",
    "review",
    "release",
    "bug",
    "commit",
    "agenda",
    "proposal",
    "support",
    "ticket",
    "schedule",
    "colleague",
    "customer",
    "attachments",
    "account",
];

/// Local parts of senders that never read replies.
pub(crate) const NO_REPLY_SENDERS: &[&str] = &[
    "noreply",
    "no-reply",
    "donotreply",
    "do-not-reply",
    "notification",
    "notify",
];
