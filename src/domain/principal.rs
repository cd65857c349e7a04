//! Who is asking: the authenticated caller of a request and the two roles of API.md.
//!
//! The domain owns these (not `http`) because the booking rules are stated in them: a
//! guest sees only their own reservations, staff see every one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who may do what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Hotel staff: every catalog, inventory and rate write, any reservation, admin.
    Staff,
    /// A guest: books, reads and cancels their own reservations.
    Guest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::Guest => "guest",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "staff" => Ok(Role::Staff),
            "guest" => Ok(Role::Guest),
            other => Err(format!("`{other}` is not a role: staff or guest")),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub role: Role,
}

impl Principal {
    pub fn is_staff(&self) -> bool {
        self.role == Role::Staff
    }

    /// Whether this caller may see a reservation made by `guest_id`: its guest, or any
    /// member of staff.
    pub fn may_see(&self, guest_id: &str) -> bool {
        self.is_staff() || self.sub == guest_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_back_what_they_print() {
        for role in [Role::Staff, Role::Guest] {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn guests_see_only_their_own() {
        let ada = Principal {
            sub: "ada".into(),
            role: Role::Guest,
        };
        let staff = Principal {
            sub: "s".into(),
            role: Role::Staff,
        };
        assert!(ada.may_see("ada"));
        assert!(!ada.may_see("bob"));
        assert!(staff.may_see("bob"));
    }
}
