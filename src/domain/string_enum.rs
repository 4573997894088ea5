//! `string_enum!`: the one way a state or kind enum gets its one string mapping.
//!
//! States and kinds are enums inside and strings only at the edges (SQL columns, JSON,
//! templates). Writing the `as_str` match and the `FromStr` search by hand for every enum
//! let the two drift apart; the macro writes both from one table of `Variant => "string"`.
//!
//! ```ignore
//! string_enum! {
//!     /// Which way a bundle went.
//!     #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
//!     pub enum Direction {
//!         In => "in",
//!         Out => "out",
//!     }
//!     unknown(s) -> DomainError {
//!         DomainError::invalid("invalid_direction", "direction", "direction is in or out.")
//!     }
//! }
//! ```
//!
//! It declares the enum as written (attributes, doc comments and `#[default]` pass
//! through) and adds `ALL` (every value, in declaration order), `as_str` and `Display`
//! (the string). With the `unknown(input) -> ErrorType { expr }` clause it also adds
//! `FromStr`, which finds the value whose string is `input` or returns `expr` (which may
//! name `input`); without it the enum is written out only, never read back.

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The one string of this value (SQL, JSON, templates).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
        unknown($input:ident) -> $err:ty $unknown:block
    ) => {
        $crate::domain::string_enum::string_enum! {
            $(#[$meta])*
            $vis enum $name {
                $( $(#[$vmeta])* $variant => $text ),+
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $err;
            fn from_str($input: &str) -> ::std::result::Result<Self, $err> {
                Self::ALL
                    .into_iter()
                    .find(|x| x.as_str() == $input)
                    .ok_or_else(|| $unknown)
            }
        }
    };
}

pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    use crate::domain::DomainError;

    string_enum! {
        /// A test enum with a default and a doc comment on a variant.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub enum Tide {
            /// Coming in.
            #[default]
            Flood => "flood",
            Ebb => "ebb-tide",
        }
        unknown(s) -> DomainError {
            DomainError::invalid("invalid_tide", "tide", format!("'{s}' is flood or ebb-tide."))
        }
    }

    string_enum! {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum WriteOnly {
            Plus => "+",
        }
    }

    #[test]
    fn each_value_reads_back_from_its_one_string() {
        assert_eq!(Tide::ALL, [Tide::Flood, Tide::Ebb]);
        for t in Tide::ALL {
            assert_eq!(t.as_str().parse::<Tide>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(Tide::Ebb.as_str(), "ebb-tide");
        assert_eq!(Tide::default(), Tide::Flood);
        assert_eq!(WriteOnly::ALL[0].as_str(), "+");
    }

    #[test]
    fn an_unknown_string_is_the_given_error() {
        assert_eq!(
            "Ebb".parse::<Tide>(),
            Err(DomainError::invalid(
                "invalid_tide",
                "tide",
                "'Ebb' is flood or ebb-tide."
            ))
        );
        assert!("".parse::<Tide>().is_err());
    }
}
