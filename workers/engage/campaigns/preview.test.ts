import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hashedId, redactor, REDACTED } from "./preview.ts";

const profile = {
  id: "cust-42",
  email: "o'brien@shop.example",
  language: "fr",
  timezone: "Europe/Paris",
  attributes: {
    firstName: "Siobhán",
    city: "Paris",
    tags: ["gold", "re"],
    address: { street: "1 <Main> St" },
    age: 40,
  },
};

describe("preview redaction", () => {
  it("replaces the profile's id, address and string attributes, nested and HTML-escaped ones too", () => {
    const redact = redactor(profile);
    assert.equal(
      redact("Hi Siobhán from Paris (gold), o&#39;brien@shop.example, 1 &lt;Main&gt; St, id cust-42, age 40"),
      `Hi ${REDACTED} from ${REDACTED} (${REDACTED}), ${REDACTED}, ${REDACTED}, id ${REDACTED}, age 40`,
    );
  });

  it("replaces a value containing another whole, and never searches a replacement again", () => {
    // "re" is an attribute value and also inside "[redacted]": the output keeps "[redacted]" intact.
    const redact = redactor(profile);
    assert.equal(redact("o'brien@shop.example re"), `${REDACTED} ${REDACTED}`);
  });

  it("keeps single characters and a profile without personal values as they are", () => {
    const redact = redactor({ id: "7", email: null, language: null, timezone: null, attributes: { grade: "B" } });
    assert.equal(redact("Grade B for 7"), "Grade B for 7");
  });

  it("hashes a profile id to a stable pseudonym per namespace", () => {
    assert.equal(hashedId("shop", "cust-42"), hashedId("shop", "cust-42"));
    assert.notEqual(hashedId("shop", "cust-42"), hashedId("other", "cust-42"));
    assert.match(hashedId("shop", "cust-42"), /^sha256:[0-9a-f]{16}$/);
  });
});
