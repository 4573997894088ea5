//! Issue 15, explaining what users see: an instance page gives each license its status and
//! the reason in words (export restricted, out of compliance by N, not authorized, which
//! license covered it), the VA page says how many units went to substitution, and the
//! events page shows details as label/value fields rather than JSON.

use crate::support::agent::{rfc3339, RawAgent};
use crate::support::{Licensed, VA};
use reqwest::StatusCode;
use serde_json::json;

/// Registers a product on the upstream and reports `usage`; answers its instance id.
pub async fn product(l: &Licensed, token: &str, sn: &str, usage: &[(&str, i64)]) -> String {
    let (a, agent) = RawAgent::register(&l.server.url, token, "C9300", sn).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let agent = agent.unwrap();
    let r = agent
        .report(&format!("r-{sn}"), &rfc3339(RawAgent::now()), usage)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    agent.instance_id.clone()
}

/// The text of the element with `id` in a page (tags stripped, entities as they are).
fn text_of(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no #{id}"));
    let open_end = html[start..].find('>').unwrap() + start + 1;
    let close = html[open_end..].find("</").unwrap() + open_end;
    html[open_end..close].to_string()
}

#[tokio::test]
async fn instance_and_va_pages_explain_statuses_and_substitution() {
    let l = Licensed::start().await;
    l.license(
        json!({ "tag": "ess", "name": "DNA Essentials", "type": "perpetual",
        "quantity": 2, "start": "2020-01-01" }),
    )
    .await;
    l.license(
        json!({ "tag": "adv", "name": "DNA Advantage", "type": "perpetual",
        "quantity": 3, "start": "2020-01-01", "substitutes": ["ess"] }),
    )
    .await;
    l.license(
        json!({ "tag": "sec", "name": "Secure Export", "type": "perpetual",
        "quantity": 5, "start": "2020-01-01", "export_controlled": true }),
    )
    .await;
    l.license(
        json!({ "tag": "dna", "name": "DNA Premier", "type": "perpetual",
        "quantity": 1, "start": "2020-01-01" }),
    )
    .await;
    let token = l.simple_token().await;
    // ess: 5 wanted, 2 own + 3 from Advantage; sec without an export token; dna over by 2;
    // a tag nobody holds.
    let covered = product(&l, &token, "FOC1", &[("ess", 5)]).await;
    let restricted = product(&l, &token, "FOC2", &[("sec", 1)]).await;
    let short = product(&l, &token, "FOC3", &[("dna", 3)]).await;
    let unknown = product(&l, &token, "FOC4", &[("ghost", 1)]).await;

    let session = l.server.session("system-admin", None).await;
    let page = |id: &str| format!("/accounts/Acme/virtual-accounts/Lab/instances/{id}");

    let (s, html) = session.page(&page(&covered)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(text_of(&html, "license-status-1"), "authorized");
    let why = text_of(&html, "license-reason-1");
    assert!(
        why.contains("DNA Essentials pool is used up") && why.contains("covered by DNA Advantage"),
        "{why}"
    );

    let (_, html) = session.page(&page(&restricted)).await;
    assert_eq!(text_of(&html, "license-status-1"), "export restricted");
    assert!(text_of(&html, "license-reason-1")
        .contains("Secure Export is export-controlled, and this instance was registered without an export-controlled token"));

    let (_, html) = session.page(&page(&short)).await;
    assert_eq!(text_of(&html, "license-status-1"), "out of compliance");
    assert!(
        text_of(&html, "license-reason-1").contains("the DNA Premier pool is short by 2 licenses"),
        "{html}"
    );

    let (_, html) = session.page(&page(&unknown)).await;
    assert_eq!(text_of(&html, "license-status-1"), "not authorized");
    assert!(text_of(&html, "license-reason-1")
        .contains("this virtual account has no ghost license, and no license here covers it"));

    // The VA page: Advantage's units all go to Essentials.
    let (_, html) = session.page("/accounts/Acme/virtual-accounts/Lab").await;
    assert!(
        html.contains("3 in use, all covering DNA Essentials"),
        "{html}"
    );
    let (_, lic) = l.api.get(&format!("{VA}/licenses")).await;
    assert!(lic.to_string().contains("\"in_use\":3"), "{lic}");

    // Events: label/value fields, no JSON braces.
    let (_, html) = session.page("/events?action=license.created").await;
    assert!(html.contains("class=\"event-fields\""), "{html}");
    assert!(html.contains("<dt>Quantity</dt>"), "{html}");
    let details = html.split("class=\"detail\"").skip(1).collect::<String>();
    assert!(
        !details.contains("{&quot;") && !details.contains("{\""),
        "{details}"
    );

    // A license form with several mistakes: every one shown at once, in words, next to
    // its field, with what was typed kept.
    let va_page = "/accounts/Acme/virtual-accounts/Lab";
    let (s, html, _) = session
        .submit(
            va_page,
            &format!("{va_page}/licenses"),
            &[
                ("tag", ""),
                ("name", "Forgot the tag"),
                ("license_type", "perpetual"),
                ("quantity", "ten"),
                ("start", "2020-01-01"),
                ("rank", "-3"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"license-tag-error\""), "{html}");
    assert!(
        html.contains("Enter a whole number of licenses, like 10."),
        "{html}"
    );
    assert!(
        html.contains("The rank is a whole number from 0 to 1000000"),
        "{html}"
    );
    assert!(html.contains("value=\"ten\"") && html.contains("value=\"Forgot the tag\""));
    assert!(!html.contains("must be a whole number"));

    // Moving more than the pool can spare: said next to the quantity, not in a banner.
    l.api.create_va("Acme", "Spare").await;
    let (s, html, _) = session
        .submit(
            va_page,
            &format!("{va_page}/licenses/transfer"),
            &[
                ("tag", "dna"),
                ("quantity", "5"),
                ("to_virtual_account", "Spare"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{html}");
    assert!(html.contains("id=\"transfer-quantity-error\""), "{html}");
    assert!(!html.contains("id=\"problem\""), "no banner");
}
