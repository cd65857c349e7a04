// retry_storm.js: clients that resend the same reservation id, as flaky networks and
// impatient retry loops do. Each iteration sends one booking RETRIES times at once (a
// burst, as a client that timed out and retried in parallel), then once more after.
//
//   k6 run -e BASE_URL=... -e STAFF_TOKEN=... -e GUEST_TOKEN=... \
//          -e DURATION=30s -e RATE=50 -e RETRIES=4 loadtest/retry_storm.js
//
// Every answer must be 201 (first), 200 (a replay of the stored reservation) or 409
// request_in_progress (the first is still in flight); the final resend must answer the
// stored reservation. At the end, each id must be reserved once: on every night, the rooms
// Postgres counts as reserved equal the rooms of the stored reservations (an id deducted
// twice would show as more), and no id is stored twice.
import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';
import {
  BASE_URL, DURATION, RATE, createHotel, booking, guest, uuid, isProblem,
  reservationsOf, checkNightsMatchReservations,
} from './lib.js';

// 409 sold_out (and request_in_progress) are answers the API promises under load, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

const RETRIES = Number(__ENV.RETRIES || 4);
const vus = Math.max(2, Math.ceil(RATE / 2));
const ids = new Counter('reservation_ids_sent');

export const options = {
  scenarios: {
    retry_storm: {
      executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: vus, maxVUs: vus * 10,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{name:POST /v1/reservations}': ['p(95)<1000'],
  },
};

export function setup() {
  // Plenty of rooms: the point here is idempotency, not selling out.
  return { hotel: createHotel(`Retry storm ${uuid().slice(0, 8)}`, 10000, 5, 65) };
}

export default function (data) {
  const id = uuid();
  const checkIn = 5 + Math.floor(Math.random() * 58);
  const body = booking(id, data.hotel, checkIn, 2, 2);
  const params = guest({ name: 'POST /v1/reservations' });
  ids.add(1);
  const burst = http.batch(
    Array.from({ length: RETRIES }, () => ['POST', `${BASE_URL}/v1/reservations`, body, params]),
  );
  check(burst, {
    'burst: 201, 200 replay or 409 in progress': (rs) => rs.every(
      (r) => r.status === 201 || r.status === 200 || isProblem(r, 'request_in_progress'),
    ),
    'burst: at most one 201': (rs) => rs.filter((r) => r.status === 201).length <= 1,
  });
  const last = http.post(`${BASE_URL}/v1/reservations`, body, params);
  check(last, {
    'resend answers the stored reservation': (r) => r.status === 200 && r.json('reservation_id') === id,
  });
}

export function teardown(data) {
  const problems = checkNightsMatchReservations(data.hotel);
  const stored = reservationsOf(data.hotel.hotel_id);
  const distinct = new Set(stored.map((r) => r.reservation_id));
  if (distinct.size !== stored.length) problems.push('a reservation id is listed twice');
  if (stored.some((r) => r.rooms !== 2)) problems.push('a reservation holds other than 2 rooms');
  if (problems.length > 0) {
    fail(`an id was reserved more than once: ${problems.join('; ')}`);
  }
}
