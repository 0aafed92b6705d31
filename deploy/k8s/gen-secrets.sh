#!/usr/bin/env bash
# gen-secrets.sh DIR [NAMESPACE]
#
# Makes a self-signed set of the files the prod overlay's secretGenerator
# reads, for a test cluster or to see the expected shapes:
#   DIR/worker-token                 the workers' bearer token (32 random
#                                    bytes, hex): admits the worker API only
#   DIR/user-token                   the users' bearer token (istctl, the
#                                    submit Job, the dashboard): the job API only
#   DIR/ca.pem   DIR/ca.key          a new CA (keep ca.key elsewhere: the
#                                    overlay never reads it)
#   DIR/coordinator.pem/.key         server certificate for ist-coordinator
#                                    (the Service in NAMESPACE [ist], its pod,
#                                    and localhost/127.0.0.1 for port-forward)
#   DIR/worker.pem/.key              client certificate of the workers
#   DIR/client.pem/.key              client certificate of istctl users/Jobs
# Real clusters should issue these from their own CA (cert-manager, Vault,
# ...) with the same file names. Existing files are never overwritten.
set -euo pipefail
dir=${1:?usage: gen-secrets.sh DIR [NAMESPACE]}
ns=${2:-ist}
days=${IST_CERT_DAYS:-365}
mkdir -p "$dir"
cd "$dir"
for f in worker-token user-token ca.pem ca.key coordinator.pem coordinator.key worker.pem worker.key \
         client.pem client.key; do
  if [ -e "$f" ]; then
    echo "gen-secrets: $dir/$f exists; remove the old files first" >&2
    exit 1
  fi
done
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1"; }

key ca.key
openssl req -x509 -new -key ca.key -subj "/CN=ist CA" -days "$days" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem 2>/dev/null

# sign NAME CN EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$tmp/$1.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$3"
    if [ -n "${4:-}" ]; then echo "subjectAltName=$4"; fi
  } >"$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -CAserial "$tmp/ca.srl" -days "$days" -extfile "$tmp/$1.ext" -out "$1.pem" 2>/dev/null
}

svc=ist-coordinator
sign coordinator "$svc" serverAuth \
  "DNS:$svc,DNS:$svc.$ns,DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local,DNS:$svc-0.$svc-headless.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
sign worker ist-worker clientAuth
sign client istctl clientAuth
openssl rand -hex 32 >worker-token
openssl rand -hex 32 >user-token
echo "gen-secrets: wrote worker-token, user-token, ca.pem, ca.key, coordinator/worker/client .pem/.key to $dir (namespace $ns)"
