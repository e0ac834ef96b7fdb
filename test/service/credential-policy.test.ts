import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TesseraError } from "../../src/core/errors.js";
import {
  checkNewUsername,
  isHighlyRestrictive,
  normalizeUsername,
  SCRIPT_PATTERNS,
  usernameLookupKeys,
} from "../../src/service/credential-policy.js";
import type { RequestContext } from "../../src/service/request-context.js";
import { type ServiceFixture, serviceFixture, rejectsWith } from "../support/service.js";

const context: RequestContext = { ip: "203.0.113.7", userAgent: "test-agent/1.0" };
const PASSWORD = "correct horse battery staple";

function refusedAsInvalid(username: string) {
  assert.throws(
    () => checkNewUsername(username),
    (error: unknown) => error instanceof TesseraError && error.code === "invalid_request",
    username,
  );
}

/** Every code point that is a letter, a mark or a number, as a one-character string. */
function* lettersMarksAndNumbers(): Generator<string> {
  for (let codePoint = 0; codePoint <= 0x10ffff; codePoint += 1) {
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) continue;
    const char = String.fromCodePoint(codePoint);
    if (/[\p{L}\p{M}\p{N}]/u.test(char)) yield char;
  }
}

describe("normalizeUsername()", () => {
  it("folds σ and final ς alike: ΟΔΟΣ, οδοσ and οδος are one name", () => {
    assert.equal(normalizeUsername("ΟΔΟΣ"), "οδοσ");
    assert.equal(normalizeUsername("οδος"), "οδοσ");
    assert.equal(normalizeUsername("οδοσ"), "οδοσ");
    assert.notEqual(normalizeUsername("Οδός"), "οδοσ", "accents still count");
  });

  it("applies full case folding: ß, ẞ and SS are one, as are ᾳ and αι", () => {
    for (const name of ["Straße", "STRASSE", "STRAẞE", "strasse"]) assert.equal(normalizeUsername(name), "strasse");
    assert.equal(normalizeUsername("ᾼ"), "αι");
    assert.equal(normalizeUsername("ᾳ"), "αι");
  });

  it("folds width and compatibility forms: ＡＬＩＣＥ, ﬁx and ㎏ come out as alice, fix and kg", () => {
    assert.equal(normalizeUsername("ＡＬＩＣＥ"), "alice");
    assert.equal(normalizeUsername("ﬁx"), "fix");
    assert.equal(normalizeUsername("㎏"), "kg");
  });

  it("folds Cherokee to its capitals, keeps dotless ı apart from i, and İ as i with a dot above", () => {
    assert.equal(normalizeUsername("ꮳꮃꭹ"), "ᏣᎳᎩ");
    assert.equal(normalizeUsername("ᏣᎳᎩ"), "ᏣᎳᎩ");
    assert.equal(normalizeUsername("bıb"), "bıb");
    assert.equal(normalizeUsername("İstanbul"), "i\u0307stanbul");
    assert.equal(normalizeUsername("İSTANBUL"), normalizeUsername("İstanbul"));
  });

  it("drops invisible characters such as variation selectors", () => {
    assert.equal(normalizeUsername("bob\uFE0F"), "bob");
  });

  it("is a fixed point and ignores a prior toLowerCase(), for every letter, mark and number", () => {
    for (const char of lettersMarksAndNumbers()) {
      const key = normalizeUsername(char);
      if (normalizeUsername(key) !== key || normalizeUsername(char.toLowerCase()) !== key) {
        assert.fail(`U+${char.codePointAt(0)?.toString(16)}`);
      }
    }
  });
});

describe("usernameLookupKeys()", () => {
  it("tries the key form used before NFKC_Casefold first, when it differs", () => {
    assert.deepEqual(usernameLookupKeys("ΟΔΟΣ"), ["οδος", "οδοσ"]);
    assert.deepEqual(usernameLookupKeys("Straße"), ["straße", "strasse"]);
    assert.deepEqual(usernameLookupKeys("Alice"), ["alice"]);
    assert.deepEqual(usernameLookupKeys("a b"), []);
  });
});

describe("isHighlyRestrictive()", () => {
  it("allows one script, with digits, . _ @ + - and combining marks", () => {
    for (const name of ["bob", "bob_1.x@y+z-w", "Пётр", "राहुल१२", "Nguyễn", "İstanbul", "e\u0301clair", "ゆうき"]) {
      assert.equal(isHighlyRestrictive(name), true, name);
    }
  });

  it("allows Latin with Han and kana, with Han and Bopomofo, and with Han and Hangul", () => {
    for (const name of ["Tanaka太郎", "たなかタロウ太郎Tanaka", "王小明ㄅㄆ", "Wang王小明", "김철수金Kim"]) {
      assert.equal(isHighlyRestrictive(name), true, name);
    }
  });

  it("refuses other mixes: Latin with Cyrillic or Greek, Hangul with kana, Latin with Devanagari digits", () => {
    for (const name of ["bоb", "pаypal", "Ωmega", "ПетрIvanov", "김タ", "Иван王", "abc१", "abc١"]) {
      assert.equal(isHighlyRestrictive(name), false, name);
    }
  });

  it("knows the script of every letter, mark and number of this Node's Unicode", () => {
    const known = [...SCRIPT_PATTERNS, /[\p{scx=Zyyy}\p{scx=Zinh}]/u];
    for (const char of lettersMarksAndNumbers()) {
      if (!known.some((pattern) => pattern.test(char))) assert.fail(`U+${char.codePointAt(0)?.toString(16)}`);
    }
  });
});

describe("checkNewUsername()", () => {
  it("returns the NFKC display form and the NFKC_Casefold key", () => {
    assert.deepEqual(checkNewUsername("ΟΔΟΣ"), { display: "ΟΔΟΣ", key: "οδοσ" });
    assert.deepEqual(checkNewUsername("ｗｉｄｅ"), { display: "wide", key: "wide" });
  });

  it("refuses mixed scripts and invisible characters with invalid_request", () => {
    refusedAsInvalid("bоb");
    refusedAsInvalid("bob\uFE0F");
    refusedAsInvalid("\u3164bob");
  });
});

describe("usernames at registration and login", () => {
  let fixture: ServiceFixture;

  before(async () => {
    fixture = await serviceFixture();
  });
  after(() => fixture.close());

  it("makes ΟΔΟΣ and οδοσ one account", async () => {
    const user = await fixture.service.register("ΟΔΟΣ", PASSWORD, context);
    await rejectsWith(fixture.service.register("οδοσ", PASSWORD, context), "username_taken");
    await rejectsWith(fixture.service.register("Οδος", PASSWORD, context), "username_taken");
    for (const name of ["οδοσ", "οδος", "ΟΔΟΣ"]) {
      assert.equal((await fixture.service.login(name, PASSWORD, context)).userId, user.id, name);
    }
  });

  it("makes Straße and STRASSE one account, shown as registered", async () => {
    const user = await fixture.service.register("Straße", PASSWORD, context);
    assert.equal(user.username, "Straße");
    await rejectsWith(fixture.service.register("STRASSE", PASSWORD, context), "username_taken");
    assert.equal((await fixture.service.login("STRASSE", PASSWORD, context)).userId, user.id);
  });

  it("refuses bоb with a Cyrillic о beside bob", async () => {
    await fixture.service.register("bob", PASSWORD, context);
    await rejectsWith(fixture.service.register("bоb", PASSWORD, context), "invalid_request");
  });

  it("registers Latin with Han, Devanagari with its marks, and İstanbul", async () => {
    for (const name of ["Tanaka太郎", "राहुल", "İstanbul"]) {
      const user = await fixture.service.register(name, PASSWORD, context);
      assert.equal((await fixture.service.login(name.toUpperCase(), PASSWORD, context)).userId, user.id, name);
    }
  });
});
