#!/usr/bin/env bash
# Vendor the JavaScript the website needs, so the built book works offline:
#   MathJax 3 (typesets the math), require.js and the ipywidgets embed manager
#   (render the widgets that executed chapters saved into their pages).
#
# Usage: bash scripts/vendor_js.sh DEST        (the Makefile uses DEST=book/_vendor)
#
# DEST is merged into the root of the website by Sphinx's `html_extra_path`
# (see _config.yml), so the files go under DEST/_vendor/ and are served from
# _build/html/_vendor/. They are not in a `_static` folder on purpose: Jupyter Book 1
# injects every .js and .css found in its static paths into every page.
#
# Versions and npm integrity hashes are pinned: bump them together, then run
# `make clean test`. The tarballs are downloaded once with `npm pack` into the
# gitignored build/ folder; a second run with the same versions returns at once.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DEST   (for example: $0 book/_vendor)" >&2
    exit 2
fi

readonly MATHJAX="mathjax@3.2.2"
readonly MATHJAX_INTEGRITY="sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
readonly HTML_MANAGER="@jupyter-widgets/html-manager@1.0.15"
readonly HTML_MANAGER_INTEGRITY="sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
readonly REQUIREJS="requirejs@2.3.8"
readonly REQUIREJS_INTEGRITY="sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw=="

readonly repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly dest="$1"
readonly site="$dest/_vendor"
readonly versions_file="$site/VERSIONS"
readonly expected_versions="$MATHJAX $HTML_MANAGER $REQUIREJS"

# The files the pages load; if any is missing the vendoring is redone.
readonly required_files=(
    "$site/mathjax/tex-chtml-full.js"
    "$site/mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff"
    "$site/requirejs/require.js"
    "$site/html-manager/embed-amd.js"
)

already_done() {
    [[ -f "$versions_file" && "$(cat "$versions_file")" == "$expected_versions" ]] || return 1
    local file
    for file in "${required_files[@]}"; do
        [[ -s "$file" ]] || return 1
    done
}

if already_done; then
    echo "vendor_js: $site already holds $expected_versions"
    exit 0
fi

if ! command -v npm >/dev/null; then
    echo "vendor_js: npm is required to vendor MathJax and the ipywidgets embed manager." >&2
    echo "vendor_js: install Node.js and npm (Debian: apt-get install -y npm), then rerun." >&2
    exit 1
fi

readonly download_dir="$repo_root/build/vendor_js"
mkdir -p "$download_dir"

# Echo the path of the verified tarball of package $1 (name@version), downloading it
# when it is not already there. npm checks the registry's hash; we check ours too,
# so a changed package on the registry fails loudly instead of changing the site.
fetch() {
    local spec="$1" integrity="$2"
    local tarball="$download_dir/$(echo "${spec#@}" | tr '/@' '--').tgz"
    if [[ ! -s "$tarball" ]]; then
        (cd "$download_dir" && npm pack --silent "$spec" >/dev/null)
    fi
    local actual
    # node comes with npm; openssl or sha512sum plus base64 may not be there.
    actual="$(node -e 'const data = require("fs").readFileSync(process.argv[1]);
        const hash = require("crypto").createHash("sha512").update(data).digest("base64");
        process.stdout.write("sha512-" + hash);' "$tarball")"
    if [[ "$actual" != "$integrity" ]]; then
        rm -f "$tarball"
        echo "vendor_js: $spec has integrity $actual, expected $integrity" >&2
        exit 1
    fi
    echo "$tarball"
}

# Unpack tarball $1 whole into a scratch folder and echo that folder's "package" root
# (whole, not by pattern: GNU and BSD tar disagree on wildcard options).
unpack() {
    local into
    into="$(mktemp -d "$staging/unpacked.XXXXXX")"
    tar -xzf "$1" -C "$into"
    echo "$into/package"
}

echo "vendor_js: vendoring $expected_versions into $site"
staging="$(mktemp -d "$download_dir/staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/site/mathjax/output/chtml/fonts" "$staging/site/html-manager" \
    "$staging/site/requirejs"

# Each fetch has a line of its own: set -e misses a failure nested inside "$(...)".
mathjax_tgz="$(fetch "$MATHJAX" "$MATHJAX_INTEGRITY")"
mathjax="$(unpack "$mathjax_tgz")"
# The -full component bundles every TeX extension, so nothing is fetched on demand;
# MathJax finds its fonts under output/ next to itself.
cp "$mathjax/es5/tex-chtml-full.js" "$mathjax/LICENSE" "$staging/site/mathjax/"
cp -R "$mathjax/es5/output/chtml/fonts/woff-v2" "$staging/site/mathjax/output/chtml/fonts/"

html_manager_tgz="$(fetch "$HTML_MANAGER" "$HTML_MANAGER_INTEGRITY")"
html_manager="$(unpack "$html_manager_tgz")"
# The embed manager and the Font Awesome files its CSS refers to; _config.yml tells
# require.js that they live together in html-manager/.
cp "$html_manager"/dist/embed-amd.js "$html_manager"/dist/embed.js.LICENSE.txt \
    "$html_manager"/dist/*.{woff,woff2,ttf,eot,svg} "$staging/site/html-manager/"

requirejs_tgz="$(fetch "$REQUIREJS" "$REQUIREJS_INTEGRITY")"
requirejs="$(unpack "$requirejs_tgz")"
cp "$requirejs/require.js" "$staging/site/requirejs/"

echo "$expected_versions" >"$staging/site/VERSIONS"

# Swap the finished folder in at the end, so an interrupted run leaves no half state.
mkdir -p "$dest"
rm -rf "$site"
mv "$staging/site" "$site"
chmod -R a+rX "$site"
# Keep the downloaded files out of git without touching the repository's .gitignore.
printf '# Created by scripts/vendor_js.sh\n*\n' >"$dest/.gitignore"
echo "vendor_js: done ($(du -sh "$site" | cut -f1))"
