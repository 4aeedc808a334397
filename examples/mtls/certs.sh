#!/usr/bin/env bash
# Makes the test-only PKI of this example with openssl and writes secrets.yaml from it:
#   certs/server.{crt,key}   the certificate of partners.localhost (self-signed)
#   certs/client-ca.{crt,key} the CA partners' client certificates must chain to
#   certs/billing.{crt,key}  a client certificate for billing.partner.example (allowed)
#   certs/intern.{crt,key}   a client certificate for intern.partner.example (not allowed)
#   certs/stranger.{crt,key} a client certificate from another CA (refused in the handshake)
# The committed copies are test-only keys; run this to make your own.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs
days=3650
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

openssl req -x509 "${ec[@]}" -days "$days" -keyout certs/server.key -out certs/server.crt \
  -subj "/CN=partners.localhost" -addext "subjectAltName=DNS:partners.localhost" 2>/dev/null

ca() { # name, subject
  openssl req -x509 "${ec[@]}" -days "$days" -keyout "certs/$1.key" -out "certs/$1.crt" \
    -subj "$2" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
client() { # name, dns name, ca
  openssl req "${ec[@]}" -keyout "certs/$1.key" -out "certs/$1.csr" -subj "/O=Partner/CN=$2" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=clientAuth\n' "$2" > "certs/$1.ext"
  openssl x509 -req -in "certs/$1.csr" -CA "certs/$3.crt" -CAkey "certs/$3.key" \
    -CAcreateserial -days "$days" -extfile "certs/$1.ext" -out "certs/$1.crt" 2>/dev/null
  rm -f "certs/$1.csr" "certs/$1.ext" "certs/$3.srl"
}
ca client-ca "/O=Partner/CN=Partner client CA"
ca stranger-ca "/CN=Some other CA"
client billing billing.partner.example client-ca
client intern intern.partner.example client-ca
client stranger billing.partner.example stranger-ca
rm -f certs/stranger-ca.key

indent() { sed 's/^/    /' "$1"; }
{
  echo "# Written by certs.sh: test-only certificates of the mtls example."
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata: {name: partners-tls, namespace: shop}"
  echo "type: kubernetes.io/tls"
  echo "stringData:"
  echo "  tls.crt: |"; indent certs/server.crt
  echo "  tls.key: |"; indent certs/server.key
  echo "---"
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata: {name: partners-client-ca, namespace: shop}"
  echo "stringData:"
  echo "  ca.crt: |"; indent certs/client-ca.crt
} > secrets.yaml
echo "wrote certs/ and secrets.yaml"
