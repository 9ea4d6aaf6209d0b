"""Failure signatures: variable parts masked, the same failure → the same id, different ones apart."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from services.analytics.signatures import MAX_CHARS, normalise, signature, signature_id

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = [
    ("Image too small: icon 96x96 below minimum 512x512 (xxhdpi)",
     "Image too small: icon <n>x<n> below minimum <n>x<n> (xxhdpi)"),
    ("Unsupported image format: splash.heic (image/heic); expected png, webp, jpg or svg",
     "Unsupported image format: <path> (image/heic); expected png, webp, jpg or svg"),
    ("SVG parse error in logo.svg: unsupported element <foreignObject> at line 37",
     "SVG parse error in <path>: unsupported element <foreignObject> at line <n>"),
    ("Could not GET 'https://repo.maven.apache.org/maven2/com/squareup/okhttp3/okhttp/4.12.0/okhttp-4.12.0.pom'. "
     "Received status code 502 from server: Bad Gateway",
     "Could not GET '<url>'. Received status code <n> from server: Bad Gateway"),
    ("Failed to resolve: com.google.firebase:firebase-bom:33.1.0",
     "Failed to resolve: com.google.firebase:firebase-bom:<ver>"),
    ("Failed to resolve: com.squareup.okhttp3:okhttp:5.0.0-alpha.14",
     "Failed to resolve: com.squareup.okhttp3:okhttp:<ver>"),
    ("Could not resolve com.lulupay:partner-sdk:2.7.3. Required by: project :app > "
     "Could not find com.lulupay:partner-sdk:2.7.3.",
     "Could not resolve com.lulupay:partner-sdk:<ver>. Required by: project :app > "
     "Could not find com.lulupay:partner-sdk:<ver>."),
    ("Execution failed for task ':app:compileReleaseKotlin'. > Compilation error in "
     "/src/main/java/com/lulupay/partner/acme_bank/MainActivity.kt:120",
     "Execution failed for task '<str>'. > Compilation error in <path>"),
    ("Execution failed for task ':app:mergeDebugResources'. > Android resource compilation failed: "
     "res/values/strings.xml:12: error: unescaped apostrophe",
     "Execution failed for task '<str>'. > Android resource compilation failed: <path>: error: unescaped apostrophe"),
    ("Cannot fit requested classes in a single dex file (# methods: 66012 > 65536)",
     "Cannot fit requested classes in a single dex file (# methods: <n> > <n>)"),
    ("Build step 'compilation' exceeded the 1800s timeout and was killed",
     "Build step '<str>' exceeded the <n>s timeout and was killed"),
    ("apksigner: java.security.cert.CertificateExpiredException: NotAfter: Mon Nov 09 00:00:00 UTC 2026 "
     "(alias 'acme-bank-release')",
     "apksigner: java.security.cert.CertificateExpiredException: NotAfter: <time> (alias '<str>')"),
    ("Keystore was tampered with, or password was incorrect",
     "Keystore was tampered with, or password was incorrect"),
    ('Failed to read key acme-bank-release from store "/secrets/acme-bank/release.jks": Cannot recover key',
     'Failed to read key acme-bank-release from store "<path>": Cannot recover key'),
    ("Upload to Play Console timed out after 300s", "Upload to Play Console timed out after <n>s"),
    ("Artifact upload failed: 503 Service Unavailable from artifacts.lulupay.internal",
     "Artifact upload failed: <n> Service Unavailable from artifacts.lulupay.internal"),
    ("Connection reset by peer while uploading app-release.aab (attempt 3/3)",
     "Connection reset by peer while uploading <path> (attempt <n>/<n>)"),
    ("Duplicate class kotlin.collections.jdk8.CollectionsJDK8Kt found in modules kotlin-stdlib-1.8.22 and "
     "kotlin-stdlib-jdk8-1.6.21",
     "Duplicate class kotlin.collections.jdk8.CollectionsJDK8Kt found in modules kotlin-stdlib-<ver> and "
     "kotlin-stdlib-jdk8-<ver>"),
    ("java.lang.OutOfMemoryError: Java heap space", "java.lang.OutOfMemoryError: Java heap space"),
    ("Runner 3f2a9c1e-7b4d-4e21-9a0f-1c2d3e4f5a6b lost build at commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
     "Runner <uuid> lost build at commit <hex>"),
    ("Segfault at 0x7ffd3a2c in libart.so, started 2026-11-12T14:03:22.123Z, v33.1 on x86_64",
     "Segfault at <hex> in <path>, started <time>, <ver> on x86_64"),
    (r"Cannot open C:\agents\ci\build\app.gradle:12; can't write 'out' to image/png",
     "Cannot open <path>; can't write '<str>' to image/png"),
    ("  Gradle\tdaemon\n\n  disappeared  ", "Gradle daemon disappeared"),
    ("", ""),
]

SAME = [
    ("Image too small: icon 96x96 below minimum 512x512 (xxhdpi)",
     "Image too small: icon 48x48 below minimum 512x512 (xxhdpi)"),
    ("Unsupported image format: splash.heic (image/heic); expected png, webp, jpg or svg",
     "Unsupported image format: screenshot_2.heic (image/heic); expected png, webp, jpg or svg"),
    ("SVG parse error in logo.svg: unsupported element <foreignObject> at line 37",
     "SVG parse error in logo.svg: unsupported element <foreignObject> at line 5"),
    ("Could not GET 'https://repo.maven.apache.org/maven2/com/squareup/okhttp3/okhttp/4.12.0/okhttp-4.12.0.pom'. "
     "Received status code 502 from server: Bad Gateway",
     "Could not GET 'https://repo.maven.apache.org/maven2/androidx/core/core-ktx/1.13.1/core-ktx-1.13.1.pom'. "
     "Received status code 503 from server: Bad Gateway"),
    ("Failed to resolve: com.google.firebase:firebase-bom:33.1.0",
     "Failed to resolve: com.google.firebase:firebase-bom:32.8.1"),
    ("Could not resolve com.lulupay:partner-sdk:2.7.3. Required by: project :app > "
     "Could not find com.lulupay:partner-sdk:2.7.3.",
     "Could not resolve com.lulupay:partner-sdk:2.9.0. Required by: project :app > "
     "Could not find com.lulupay:partner-sdk:2.9.0."),
    ("Execution failed for task ':app:compileReleaseKotlin'. > Compilation error in "
     "/src/main/java/com/lulupay/partner/acme_bank/MainActivity.kt:120",
     "Execution failed for task ':app:compileDebugKotlin'. > Compilation error in "
     "/src/main/java/com/lulupay/partner/zen_pay/WalletViewModel.kt:33"),
    ("Execution failed for task ':app:mergeDebugResources'. > Android resource compilation failed: "
     "res/values/strings.xml:12: error: unescaped apostrophe",
     "Execution failed for task ':app:mergeReleaseResources'. > Android resource compilation failed: "
     "res/values/strings.xml:300: error: unescaped apostrophe"),
    ("Cannot fit requested classes in a single dex file (# methods: 66012 > 65536)",
     "Cannot fit requested classes in a single dex file (# methods: 70999 > 65536)"),
    ("apksigner: java.security.cert.CertificateExpiredException: NotAfter: Mon Nov 09 00:00:00 UTC 2026 "
     "(alias 'acme-bank-release')",
     "apksigner: java.security.cert.CertificateExpiredException: NotAfter: Thu Feb 04 13:00:00 UTC 2027 "
     "(alias 'zen-pay-release')"),
    ('Failed to read key acme-bank-release from store "/secrets/acme-bank/release.jks": Cannot recover key',
     'Failed to read key acme-bank-release from store "/secrets/old/acme-bank/release.jks": Cannot recover key'),
    ("Keystore file '/secrets/acme-bank/upload.jks' not found for signing config 'release'.",
     "Keystore file '/secrets/zen-pay/upload.jks' not found for signing config 'release'."),
    ("Connection reset by peer while uploading app-release.aab (attempt 3/3)",
     "Connection reset by peer while uploading app-debug.aab (attempt 2/5)"),
    ("Upload to Play Console timed out after 300s", "Upload to Play Console timed out after 45s"),
    ("Runner 3f2a9c1e-7b4d-4e21-9a0f-1c2d3e4f5a6b lost", "Runner 00000000-0000-4000-8000-00000000abcd lost"),
    ("Checkout of 9fceb02 failed", "Checkout of a1b2c3d4e5f60718 failed"),
    ("Job started 2026-11-12T14:03:22Z failed", "Job started 2027-01-02T00:00:00.5+01:00 failed"),
    ("Build 41 failed\u00a0after\u2028 3 retries", "Build 7 failed after 12 retries"),
]

DIFFERENT = [
    # words are not masked: another asset name or density is another signature
    ("Image too small: icon 96x96 below minimum 512x512 (xxhdpi)",
     "Image too small: logo 128x128 below minimum 512x512 (xhdpi)"),
    ("Keystore was tampered with, or password was incorrect",
     'Failed to read key acme-bank-release from store "/secrets/acme-bank/release.jks": Cannot recover key'),
    ("Upload to Play Console timed out after 300s", "Upload to artifacts.lulupay.internal timed out after 120s"),
    ("Artifact upload failed: 503 Service Unavailable from artifacts.lulupay.internal",
     "Google Play Developer API returned 500: Internal error encountered."),
    ("Failed to resolve: com.google.firebase:firebase-bom:33.1.0",
     "Failed to resolve: androidx.compose:compose-bom:2024.06.00"),
    ("Execution failed for task ':app:kaptDebugKotlin'. > java.lang.OutOfMemoryError: Java heap space",
     "Execution failed for task ':app:compileDebugKotlin'. > Compilation error in /src/main/java/Foo.kt:1"),
    ("Duplicate class kotlin.collections.jdk8.CollectionsJDK8Kt found in modules kotlin-stdlib-1.8.22 and "
     "kotlin-stdlib-jdk8-1.6.21", "java.lang.OutOfMemoryError: Java heap space"),
    ("Checkout of 9fceb02 failed", "Checkout of main failed"),
    ("Unsupported image format: splash.heic (image/heic); expected png, webp, jpg or svg",
     "Unsupported image format: splash.tiff (image/tiff); expected png, webp, jpg or svg"),
]


@pytest.mark.parametrize("message,pattern", EXPECTED)
def test_exact_patterns(message, pattern):
    assert normalise(message) == pattern


@pytest.mark.parametrize("message,pattern", EXPECTED)
def test_a_pattern_is_its_own_pattern(message, pattern):
    assert normalise(pattern) == pattern


@pytest.mark.parametrize("a,b", SAME)
def test_variable_parts_map_to_one_signature(a, b):
    assert a != b
    assert signature(a) == signature(b)


@pytest.mark.parametrize("a,b", DIFFERENT)
def test_different_failures_have_different_signatures(a, b):
    assert signature(a)[0] != signature(b)[0]


def test_every_generator_message_kind_is_distinct():
    patterns = {normalise(a) for a, _ in EXPECTED if a}
    ids = {signature_id(p) for p in patterns}
    assert len(ids) == len(patterns) == len([a for a, _ in EXPECTED if a])


def test_id_is_16_hex_and_fixed():
    sid, pattern = signature("Keystore was tampered with, or password was incorrect")
    assert re.fullmatch(r"[0-9a-f]{16}", sid)
    assert sid == signature_id(pattern) == "93aef188055fc007"  # must never change: ids are stored
    assert signature("") == (signature_id(""), "")


def test_ids_are_stable_across_processes():
    messages = [a for a, _ in EXPECTED] + ["Ünïcödé 💥 failed 12 times \ud800"]
    code = ("import json, sys; from services.analytics.signatures import signature; "
            "print(json.dumps([signature(m)[0] for m in json.loads(sys.stdin.read())]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(messages), capture_output=True, text=True,
                         cwd=ROOT, env=env, check=True, timeout=60)
    assert json.loads(out.stdout) == [signature(m)[0] for m in messages]


def test_a_huge_message_is_cut_before_normalising():
    head = "Compilation error in /src/main/Foo.kt:12 after 3 attempts; "
    big = head * (1_000_000 // len(head) + 1)
    assert len(big) > 1_000_000
    pattern = normalise(big)
    assert pattern == normalise(big[:MAX_CHARS])
    assert len(pattern) <= MAX_CHARS
    assert pattern.startswith("Compilation error in <path> after <n> attempts;")
    assert signature(big) == signature(big[:MAX_CHARS]) == signature(big + "tail differs")


def test_results_are_cached():
    message = "Cannot fit requested classes in a single dex file (# methods: 123456 > 65536)"
    signature(message)
    hits = signature.cache_info().hits
    assert signature(message) == signature(message)
    assert signature.cache_info().hits == hits + 2
    long = message + " at /src/main/Foo.kt:12" * 40  # > 512 characters: normalised, never cached
    size = signature.cache_info().currsize
    assert signature(long) == signature(long) and signature.cache_info().currsize == size


@pytest.mark.parametrize("message", [
    "\x00\x01\x02 Failed\x7f 12 \x9b", "\ud800\udfff lone surrogates 0x1F", "‏RTL‎ mark 3/3", "💥" * 3000,
    "'" * 2000, '"' * 999, "/" * 5000, "a." * 3000, "\\\\" * 1000 + "x", "<n>" * 700, " \t\r\n " * 400,
])
def test_odd_input_never_raises(message):
    sid, pattern = signature(message)
    assert re.fullmatch(r"[0-9a-f]{16}", sid)
    assert pattern == pattern.strip() and "  " not in pattern
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", pattern)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, categories=None), max_size=300)
       | st.text(alphabet="0123456789abcdefx/.:-_'\" \\<>@vT", max_size=300))
def test_any_text_gives_a_clean_pattern(message):
    sid, pattern = signature(message)
    assert isinstance(pattern, str) and len(sid) == 16
    assert pattern == pattern.strip() and "  " not in pattern
    assert not re.search(r"(?<!\w)[0-9]", pattern), pattern  # every number not glued to a word is masked
