// signin.mjs signs users in to the Firebase Auth emulator with the official
// JS client, as an older GymBro app build does, and prints their ID tokens.
//
// Usage: FIREBASE_AUTH_EMULATOR_HOST=127.0.0.1:9099 node signin.mjs PROJECT < users.json
//
// users.json is an array of {"email", "password", "displayName"?, "create"?}:
// with create the user signs up (createUserWithEmailAndPassword) and, when
// displayName is given, sets it (updateProfile); otherwise the user signs in
// (signInWithEmailAndPassword). The answer, on stdout, is an array of
// {"uid", "email", "idToken"} in the same order. Errors go to stderr with a
// non-zero exit.
import { readFileSync } from "node:fs";
import { initializeApp } from "firebase/app";
import {
  connectAuthEmulator,
  createUserWithEmailAndPassword,
  getAuth,
  signInWithEmailAndPassword,
  signOut,
  updateProfile,
} from "firebase/auth";

const host = process.env.FIREBASE_AUTH_EMULATOR_HOST;
const project = process.argv[2];
if (!host || !project) {
  console.error("usage: FIREBASE_AUTH_EMULATOR_HOST=host:port node signin.mjs PROJECT < users.json");
  process.exit(2);
}

// The emulator accepts any API key; a demo project needs no real one.
const app = initializeApp({ apiKey: "demo-api-key", projectId: project, authDomain: `${project}.firebaseapp.com` });
const auth = getAuth(app);
connectAuthEmulator(auth, `http://${host}`, { disableWarnings: true });

const users = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const u of users) {
  const cred = u.create
    ? await createUserWithEmailAndPassword(auth, u.email, u.password)
    : await signInWithEmailAndPassword(auth, u.email, u.password);
  if (u.create && u.displayName) {
    await updateProfile(cred.user, { displayName: u.displayName });
  }
  // forceRefresh: the token then carries the profile just set.
  const idToken = await cred.user.getIdToken(true);
  out.push({ uid: cred.user.uid, email: cred.user.email, idToken });
  await signOut(auth);
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
