// soak.js: mixed load for a long time: searches, bookings, confirms (the payment callback)
// and cancels, at a constant arrival rate.
//
//   k6 run -e BASE_URL=... -e STAFF_TOKEN=... -e GUEST_TOKEN=... \
//          -e DURATION=2h -e RATE=50 loadtest/soak.js
//
// Each iteration reads availability, books a stay (a new id) and then, as guests and
// hotels do, confirms it (60%), cancels it (20%) or leaves the hold pending (20%).
// Inventory is small enough that some stays sell out and cancels give rooms back.
// At the end, every night's reserved count must equal the rooms of its live
// reservations: nothing lost, nothing given back twice, nothing oversold.
import http from 'k6/http';
import { check, fail } from 'k6';
import {
  BASE_URL, DURATION, RATE, createHotel, booking, guest, staff, uuid, isProblem, day,
  checkNightsMatchReservations,
} from './lib.js';

// 409 sold_out (and request_in_progress) are answers the API promises under load, not failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

const HOTELS = Number(__ENV.HOTELS || 5);
const ROOMS = Number(__ENV.ROOMS || 50);
const vus = Math.max(2, Math.ceil(RATE / 2));

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: vus, maxVUs: vus * 10,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    http_req_duration: ['p(95)<1000'],
  },
};

export function setup() {
  const run = uuid().slice(0, 8);
  const hotels = [];
  for (let i = 0; i < HOTELS; i++) {
    hotels.push(createHotel(`Soak ${run} #${i}`, ROOMS, 1, 31));
  }
  return { hotels };
}

export default function (data) {
  const hotel = data.hotels[Math.floor(Math.random() * data.hotels.length)];
  const nights = 1 + Math.floor(Math.random() * 3);
  const checkIn = 1 + Math.floor(Math.random() * (30 - nights));
  const avail = http.get(
    `${BASE_URL}/v1/hotels/${hotel.hotel_id}/availability?check_in=${day(checkIn)}&check_out=${day(checkIn + nights)}&rooms=1`,
    { tags: { name: 'GET /v1/hotels/{id}/availability' } },
  );
  check(avail, { 'availability 200': (r) => r.status === 200 });

  const id = uuid();
  const res = http.post(`${BASE_URL}/v1/reservations`, booking(id, hotel, checkIn, nights),
    guest({ name: 'POST /v1/reservations' }));
  check(res, { 'reserved or sold out': (r) => r.status === 201 || isProblem(r, 'sold_out') });
  if (res.status !== 201) return;

  const fate = Math.random();
  if (fate < 0.6) {
    const confirmed = http.post(`${BASE_URL}/v1/reservations/${id}/confirm`, null,
      Object.assign(staff(), { tags: { name: 'POST /v1/reservations/{id}/confirm' } }));
    check(confirmed, { 'confirmed': (r) => r.status === 200 && r.json('status') === 'confirmed' });
  } else if (fate < 0.8) {
    const canceled = http.post(`${BASE_URL}/v1/reservations/${id}/cancel`, null,
      guest({ name: 'POST /v1/reservations/{id}/cancel' }));
    check(canceled, { 'canceled': (r) => r.status === 200 && r.json('status') === 'canceled' });
  }
}

export function teardown(data) {
  const problems = [];
  for (const hotel of data.hotels) {
    problems.push(...checkNightsMatchReservations(hotel).map((p) => `hotel ${hotel.hotel_id} ${p}`));
  }
  if (problems.length > 0) {
    fail(`inventory and reservations disagree: ${problems.join('; ')}`);
  }
}
