//! Access control as capabilities: a service operation asks here once for proof that the
//! caller may read or change an account, and passes the proof on. Store functions called
//! with a proof never see a `Principal`, so they cannot forget a check.

use super::Result;
use crate::domain::{DomainError, Principal, Role};
use crate::store::accounts::{self, Account, VirtualAccount};
use crate::store::api_clients::TokenClient;
use crate::store::users::User;
use crate::store::StoreError;
use rusqlite::Connection;

/// The caller may see this account (and everything in it).
#[derive(Debug, Clone)]
pub struct ReadAccount {
    pub account: Account,
    pub actor: String,
}

/// The caller may change this account's contents (VAs, tokens, instances, reservations,
/// settings).
#[derive(Debug, Clone)]
pub struct EditAccount {
    pub account: Account,
    pub actor: String,
}

impl EditAccount {
    /// Who may change an account may see it.
    pub fn read(&self) -> ReadAccount {
        ReadAccount {
            account: self.account.clone(),
            actor: self.actor.clone(),
        }
    }
}

/// The caller is a system admin (users, API clients, reservation removal).
#[derive(Debug, Clone)]
pub struct SystemAdmin {
    pub actor: String,
}

/// The account named `name`, if the caller may see it; an account it may not see is
/// reported as not found, exactly as an unknown one.
pub fn read_account(conn: &Connection, who: &Principal, name: &str) -> Result<ReadAccount> {
    let account = accounts::find(conn, name)?
        .filter(|a| who.can_see_account(a.id))
        .ok_or_else(|| StoreError::not_found(format!("account '{name}'")))?;
    Ok(ReadAccount {
        account,
        actor: who.actor.clone(),
    })
}

/// The account named `name`, if the caller may change it (403 when it may only see it).
pub fn edit_account(conn: &Connection, who: &Principal, name: &str) -> Result<EditAccount> {
    let cap = read_account(conn, who, name)?;
    may_edit(who, cap)
}

fn may_edit(who: &Principal, cap: ReadAccount) -> Result<EditAccount> {
    let ReadAccount { account, actor } = cap;
    if !who.can_edit_account(account.id) {
        return Err(DomainError::Forbidden(format!(
            "Your role may not change account '{}'.",
            account.name
        ))
        .into());
    }
    Ok(EditAccount { account, actor })
}

/// The account `a` (if the caller may see it) and its virtual account `va`.
pub fn read_va(
    conn: &Connection,
    who: &Principal,
    a: &str,
    va: &str,
) -> Result<(ReadAccount, VirtualAccount)> {
    let cap = read_account(conn, who, a)?;
    let va = accounts::find_va(conn, &cap.account, va)?;
    Ok((cap, va))
}

/// Like `read_va`, and the caller must be allowed to change the account. An unknown
/// virtual account is 404 before a missing right is 403, as for the account itself.
pub fn edit_va(
    conn: &Connection,
    who: &Principal,
    a: &str,
    va: &str,
) -> Result<(EditAccount, VirtualAccount)> {
    let (cap, va) = read_va(conn, who, a, va)?;
    Ok((may_edit(who, cap)?, va))
}

pub fn system_admin(who: &Principal) -> Result<SystemAdmin> {
    admin_or(who, || "Only a system admin may do this.".into())
}

/// `system_admin`, refusing with "Only system admins {what}." (the page and API say what).
pub fn system_admin_to(who: &Principal, what: &str) -> Result<SystemAdmin> {
    admin_or(who, || format!("Only system admins {what}."))
}

fn admin_or(who: &Principal, refusal: impl FnOnce() -> String) -> Result<SystemAdmin> {
    if who.is_system_admin() {
        Ok(SystemAdmin {
            actor: who.actor.clone(),
        })
    } else {
        Err(DomainError::Forbidden(refusal()).into())
    }
}

/// What a caller may list: every account, or (account-scoped roles) its own only. Store
/// listings take the account id this holds as a plain filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visible {
    account: Option<i64>,
}

impl Visible {
    /// Everything: for the server's own jobs (alert sweeps, metrics).
    pub const EVERYTHING: Visible = Visible { account: None };

    /// `None` sees every account; `Some(id)` only that one.
    pub fn account_filter(self) -> Option<i64> {
        self.account
    }

    pub fn sees(self, account_id: i64) -> bool {
        self.account.is_none_or(|a| a == account_id)
    }
}

pub fn visible(who: &Principal) -> Visible {
    Visible {
        account: who.account_filter(),
    }
}

/// The principal of a signed-in person.
pub fn user_principal(user: &User) -> Principal {
    Principal {
        actor: format!("user:{}", user.username),
        role: user.role,
        account_id: user.account_id,
    }
}

/// The principal of an API client presenting a bearer token.
pub fn client_principal(client: &TokenClient) -> Principal {
    Principal {
        actor: format!("client:{}", client.name),
        role: client.role,
        account_id: client.account_id,
    }
}

/// Whoever runs the CLI on the host (it owns the data dir) acts as a system admin; `actor`
/// names it in the event log (`cli`, or `system` on first start).
pub fn local_operator(actor: &str) -> SystemAdmin {
    SystemAdmin {
        actor: actor.to_string(),
    }
}

/// The server acting on its own (alert sweeps, metrics, seeding): a system admin.
pub fn system_principal(actor: &str) -> Principal {
    Principal {
        actor: actor.to_string(),
        role: Role::SystemAdmin,
        account_id: None,
    }
}

/// Which accounts the caller may change, for operations that learn the account only from
/// what they find (an alert named by its id): `Editable::may_edit` is asked once the
/// account is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editable {
    pub actor: String,
    /// `None` no account, `Some(None)` every account, `Some(Some(id))` that one.
    accounts: Option<Option<i64>>,
}

impl Editable {
    pub fn may_edit(&self, account_id: i64) -> bool {
        match self.accounts {
            None => false,
            Some(None) => true,
            Some(Some(a)) => a == account_id,
        }
    }
}

pub fn editable(who: &Principal) -> Editable {
    let accounts = match who.role {
        Role::SystemAdmin => Some(None),
        Role::AccountAdmin => Some(Some(who.account_id.unwrap_or(-1))),
        Role::Operator | Role::Viewer => None,
    };
    Editable {
        actor: who.actor.clone(),
        accounts,
    }
}

impl Visible {
    /// The account named `name` if this caller sees it; one it may not see is not found,
    /// exactly as an unknown one.
    pub fn account(self, conn: &Connection, name: &str) -> Result<Account> {
        Ok(accounts::find(conn, name)?
            .filter(|a| self.sees(a.id))
            .ok_or_else(|| StoreError::not_found(format!("account '{name}'")))?)
    }
}
