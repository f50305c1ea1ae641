#!/usr/bin/env bash
# Writes a one-layer OCI image-layout tarball without a registry or a daemon,
# for `ctr images import` on the local test cluster's nodes.
#
# usage: mkimage.sh OUT.tar REF [options]
#   --file SRC:DEST        copy SRC into the image at DEST (mode kept)
#   --libs                 also copy the shared libraries (and the dynamic
#                          loader) that every --file binary needs, from `ldd`
#   --symlink DEST:TARGET  a symbolic link DEST -> TARGET
#   --dir DEST             an empty directory
#   --entrypoint JSON      e.g. '["/egressctl"]' (default: none)
#   --cmd JSON             e.g. '["--help"]' (default: none)
#   --ref REF              another name for the same image (repeatable): one
#                          layer imported once, known under every name
#   --strip                strip debug information from the --file binaries
#                          copied (ELF files only; the sources are untouched)
#
# REF (e.g. localhost/egressctl:test) is stored as the image name annotation,
# so the imported image is called REF. Pods refer to it with
# `imagePullPolicy: Never`. Output is byte-for-byte reproducible.
set -euo pipefail

die() { echo "mkimage: $*" >&2; exit 1; }
(($# >= 2)) || die "usage: mkimage.sh OUT.tar REF [--file SRC:DEST]... [--libs] [--symlink DEST:TARGET]... [--dir DEST]... [--entrypoint JSON] [--cmd JSON]"
out="$1" ref="$2"; shift 2
[[ "$ref" == *:* ]] || die "image reference $ref needs a tag (name:tag)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root" blobs="$work/oci/blobs/sha256"
mkdir -p "$root" "$blobs"
entrypoint=null cmd=null libs=0 strip=0
binaries=() refs=("$ref") copied=()

while (($#)); do
    case "$1" in
        --file)
            [[ "${2:-}" == *:* ]] || die "--file needs SRC:DEST"
            src="${2%%:*}" dest="${2#*:}"
            [[ -f "$src" ]] || die "--file source $src is not a file"
            mkdir -p "$root/$(dirname "$dest")"
            cp -p "$src" "$root/$dest"
            binaries+=("$src") copied+=("$root/$dest")
            shift 2 ;;
        --symlink)
            [[ "${2:-}" == *:* ]] || die "--symlink needs DEST:TARGET"
            dest="${2%%:*}" target="${2#*:}"
            mkdir -p "$root/$(dirname "$dest")"
            ln -sfn "$target" "$root/$dest"
            shift 2 ;;
        --dir) [[ -n "${2:-}" ]] || die "--dir needs a path"; mkdir -p "$root/$2"; shift 2 ;;
        --libs) libs=1; shift ;;
        --strip) strip=1; shift ;;
        --ref) [[ "${2:-}" == *:* ]] || die "--ref needs name:tag"; refs+=("$2"); shift 2 ;;
        --entrypoint) [[ -n "${2:-}" ]] || die "--entrypoint needs a JSON array"; entrypoint="$2"; shift 2 ;;
        --cmd) [[ -n "${2:-}" ]] || die "--cmd needs a JSON array"; cmd="$2"; shift 2 ;;
        *) die "unknown option $1" ;;
    esac
done

if ((libs)); then
    for bin in "${binaries[@]}"; do
        # ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the loader;
        # a static binary prints "not a dynamic executable" and needs nothing.
        while read -r lib; do
            [[ -n "$lib" && -f "$lib" ]] || continue
            mkdir -p "$root/$(dirname "$lib")"
            cp -L "$lib" "$root/$lib"
        done < <(ldd "$bin" 2>/dev/null | awk '/=>/ {print $3; next} /^[[:space:]]*\// {print $1}')
    done
fi

if ((strip)); then
    for f in "${copied[@]}"; do
        # Only ELF files; a script or data file is left as it is.
        if [[ "$(head -c4 "$f" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
            chmod u+w "$f"
            strip --strip-debug "$f"
        fi
    done
fi

# The layer: a plain tar with fixed owners and times, gzip without a timestamp.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$work/layer.tar" .
diff_id="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
gzip -n < "$work/layer.tar" > "$work/layer.tar.gz"

# blob FILE -> stores it by digest, prints "digest size"
blob() {
    local d s
    d="$(sha256sum "$1" | cut -d' ' -f1)"
    s="$(stat -c %s "$1")"
    cp "$1" "$blobs/$d"
    echo "$d $s"
}
read -r layer_digest layer_size < <(blob "$work/layer.tar.gz")

printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/mkimage.sh"}]}' \
    "$entrypoint" "$cmd" "$diff_id" > "$work/config.json"
read -r config_digest config_size < <(blob "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" > "$work/manifest.json"
read -r manifest_digest manifest_size < <(blob "$work/manifest.json")

entries=()
for r in "${refs[@]}"; do
    entries+=("$(printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}' \
        "$manifest_digest" "$manifest_size" "$r" "${r##*:}")")
done
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' \
    "$(IFS=,; echo "${entries[*]}")" > "$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$work/oci/oci-layout"

mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/oci" -cf "$out.tmp" oci-layout index.json blobs
mv -f "$out.tmp" "$out"
echo "mkimage: $ref sha256:$manifest_digest -> $out" >&2
