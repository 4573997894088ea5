#!/bin/sh
# Checks a reservation authorization code with standard tools only (docs/protocol.md,
# "Reservations"): usage: check-authorization-code.sh AUTH.xml AUTHORITY.pub.pem
# Prints the confirmation code the product will show, then openssl's verdict; exits
# non-zero when the signature does not verify.
set -eu
code_file=$1
pub=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The exact signed bytes: <authorizationCode>...</authorizationCode>, no newline added.
printf '%s' "$(grep -o '<authorizationCode>.*</authorizationCode>' "$code_file")" > "$work/code.bin"
# The signature: base64 inside <signature>.
grep -o '<signature>[^<]*</signature>' "$code_file" | sed 's/<[^>]*>//g' | base64 -d > "$work/sig.bin"
# Confirmation code: first 4 bytes of sha256(code bytes || 10-byte key hash).
key_hash=$(grep -o '<keyHash>[0-9a-f]*</keyHash>' "$work/code.bin" | sed 's/<[^>]*>//g')
{ cat "$work/code.bin"; printf '%s' "$key_hash" | xxd -r -p; } | sha256sum | cut -c1-8 \
  | sed 's/^/confirmation_code=/'
openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$work/code.bin" -sigfile "$work/sig.bin"
