import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createSmtpMailer } from "../../src/service/mailer.js";
import { startSmtpServer, type TestSmtpServer } from "../support/smtp.js";

describe("createSmtpMailer()", () => {
  let smtp: TestSmtpServer;
  before(async () => {
    smtp = await startSmtpServer();
  });
  after(() => smtp.close());

  it("sends a plain-text mail over SMTP, logged in with the URL's credentials", async () => {
    const mailer = createSmtpMailer(smtp.url, "Tessera <no-reply@example.test>");
    try {
      await mailer.send({ to: "someone@example.test", subject: "Verify your address", text: "Open this link" });
    } finally {
      mailer.close();
    }
    const mail = await smtp.next();
    assert.equal(mail.from, "no-reply@example.test");
    assert.deepEqual(mail.to, ["someone@example.test"]);
    assert.equal(mail.user, "mailer");
    assert.match(mail.raw, /^Subject: Verify your address\r?$/m);
    assert.match(mail.raw, /Open this link/);
  });

  it("rejects when the server refuses the credentials", async () => {
    const mailer = createSmtpMailer(smtp.url.replace("mail-password", "wrong-password"), "no-reply@example.test");
    try {
      await assert.rejects(mailer.send({ to: "someone@example.test", subject: "s", text: "t" }));
    } finally {
      mailer.close();
    }
  });
});
