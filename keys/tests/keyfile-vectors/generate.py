#!/usr/bin/env python3
"""Regenerates the key file test vectors in this directory from independent implementations.

Argon2id comes from libargon2 (the RFC 9106 reference code) and XChaCha20-Poly1305 from
libsodium, both loaded with ctypes, so the vectors check keys/src/keyfile.rs against the
format as documented there, not against itself. Run: python3 generate.py
"""
import ctypes
import os
import struct

argon2 = ctypes.CDLL("libargon2.so.1")
sodium = ctypes.CDLL("libsodium.so.23")
assert sodium.sodium_init() >= 0
u32, size, buf, ull = ctypes.c_uint32, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_ulonglong
argon2.argon2id_hash_raw.argtypes = [u32, u32, u32, buf, size, buf, size, buf, size]
sodium.crypto_aead_xchacha20poly1305_ietf_encrypt.argtypes = [
    buf, ctypes.POINTER(ull), buf, ull, buf, ull, ctypes.c_void_p, buf, buf]

MAGIC = b"liaise-key\x00"
HERE = os.path.dirname(os.path.abspath(__file__))


def argon2id(passphrase: bytes, salt: bytes, m: int, t: int, p: int) -> bytes:
    out = ctypes.create_string_buffer(32)
    rc = argon2.argon2id_hash_raw(t, m, p, passphrase, len(passphrase), salt, len(salt), out, 32)
    assert rc == 0, rc
    return out.raw


def xchacha_seal(key: bytes, nonce: bytes, ad: bytes, msg: bytes) -> bytes:
    out = ctypes.create_string_buffer(len(msg) + 16)
    out_len = ctypes.c_ulonglong()
    rc = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, ctypes.byref(out_len), msg, ctypes.c_ulonglong(len(msg)),
        ad, ctypes.c_ulonglong(len(ad)), None, nonce, key)
    assert rc == 0 and out_len.value == len(msg) + 16
    return out.raw


def key_file(passphrase, payload, m, t, p, salt, nonce, version=1):
    header = MAGIC + bytes([version]) + struct.pack("<III", m, t, p) + salt + nonce
    assert len(header) == 64
    key = argon2id(passphrase.encode(), salt, m, t, p)
    return header + xchacha_seal(key, nonce, header, payload)


def write(name, expect, passphrase, payload, file):
    with open(os.path.join(HERE, name + ".txt"), "w") as f:
        f.write(f"expect: {expect}\n")
        f.write(f"passphrase: {passphrase}\n")
        f.write(f"payload: {payload.hex()}\n")
        f.write(f"file: {file.hex()}\n")


PASS = "correct horse battery staple"
PAYLOAD = b"liaise test payload \x00\x01\x02\xff"
SALT = bytes(range(16))
NONCE = bytes(range(0x40, 0x58))

minimum = key_file(PASS, PAYLOAD, 8, 1, 1, SALT, NONCE)
write("minimum-params", "payload", PASS, PAYLOAD, minimum)
write("two-lanes", "payload", PASS, PAYLOAD, key_file(PASS, PAYLOAD, 64, 3, 2, SALT, NONCE))
write("empty-payload", "payload", PASS, b"", key_file(PASS, b"", 8, 1, 1, SALT, NONCE))
write("unicode-passphrase", "payload", "pässwörd ünïcode",
      PAYLOAD, key_file("pässwörd ünïcode", PAYLOAD, 8, 1, 1, SALT, NONCE))
write("wrong-passphrase", "wrong passphrase", PASS + "!", PAYLOAD, minimum)
write("altered-salt", "wrong passphrase", PASS, PAYLOAD,
      minimum[:24] + bytes([minimum[24] ^ 1]) + minimum[25:])
write("version-2", "unsupported version", PASS, PAYLOAD, minimum[:11] + b"\x02" + minimum[12:])
write("memory-too-large", "kdf params out of range", PASS, PAYLOAD,
      minimum[:12] + struct.pack("<I", 1024 * 1024 + 1) + minimum[16:])
write("truncated", "truncated", PASS, PAYLOAD, minimum[:79])
write("not-a-key-file", "not a key file", PASS, PAYLOAD, b"-----BEGIN PRIVATE KEY-----\n")
